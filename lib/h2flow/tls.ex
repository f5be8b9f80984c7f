defmodule H2Flow.TLS do
  @moduledoc """
  TLS helpers for demos and tests: a throwaway CA and a server certificate it signed, made in
  memory.

      tls = H2Flow.TLS.self_signed(["localhost", "127.0.0.1"])
      {:ok, server} = H2Flow.start_link(handler: MyApp.Hello, port: 8443, transport: :tls, tls: tls)
      File.write!("ca.pem", H2Flow.TLS.ca_pem(tls))
      # curl --cacert ca.pem https://localhost:8443/

  A client verifies the certificate once it trusts the CA (`curl --cacert`, Node's `ca:`, Go's
  `RootCAs`, gRPC's `root_certificates`, Firefox with the CA imported by `certutil`); else it
  must be told to accept it (`curl -k`, a browser's exception). The CA's key is thrown away:
  it signs nothing else.
  """

  require Record

  for {name, tag} <- [
        tbs_certificate: :OTPTBSCertificate,
        public_key_info: :OTPSubjectPublicKeyInfo,
        public_key_algorithm: :PublicKeyAlgorithm,
        signature_algorithm: :SignatureAlgorithm,
        validity: :Validity,
        attribute: :AttributeTypeAndValue,
        extension: :Extension,
        basic_constraints: :BasicConstraints,
        authority_key_identifier: :AuthorityKeyIdentifier,
        ec_private_key: :ECPrivateKey
      ] do
    Record.defrecordp(
      name,
      tag,
      Record.extract(tag, from_lib: "public_key/include/public_key.hrl")
    )
  end

  # RFC 5758 §3.2: ecdsa-with-SHA256, whose AlgorithmIdentifier MUST omit the parameters
  # (BoringSSL and NSS reject a certificate that has any; :public_key.pkix_test_data/1 puts
  # the curve there).
  @ecdsa_with_sha256 {1, 2, 840, 10045, 4, 3, 2}
  @ec_public_key {1, 2, 840, 10045, 2, 1}
  @secp256r1 {1, 2, 840, 10045, 3, 1, 7}
  @common_name {2, 5, 4, 3}
  @organization {2, 5, 4, 10}
  @subject_key_identifier {2, 5, 29, 14}
  @key_usage {2, 5, 29, 15}
  @subject_alt_name {2, 5, 29, 17}
  @basic_constraints {2, 5, 29, 19}
  @authority_key_identifier {2, 5, 29, 35}
  @ext_key_usage {2, 5, 29, 37}
  @server_auth {1, 3, 6, 1, 5, 5, 7, 3, 1}

  # Valid from a day ago (clocks differ) for a year.
  @day 86_400

  @doc """
  Makes a certificate for `hostnames` (default `["localhost"]`; IP addresses such as
  `"127.0.0.1"` become IP entries of the subjectAltName), signed by a throwaway CA, with its
  key, in memory (`:public_key`, ECDSA P-256 with SHA-256). Returns `:ssl` options: `cert:`
  (DER), `key:` (`{:ECPrivateKey, der}`) and `cacerts:` (the CA's DER, for a client; see
  `ca_pem/1`).

  The CA has basicConstraints `CA:TRUE` and may only sign certificates; the server
  certificate has the names, keyUsage digitalSignature and extKeyUsage serverAuth. Each call
  makes a new CA with a random serial number and name, so that a client that saw an earlier
  one (a browser profile) does not mistake one for the other.
  """
  @spec self_signed([String.t()]) :: keyword()
  def self_signed(hostnames \\ ["localhost"]) when is_list(hostnames) and hostnames != [] do
    now = System.os_time(:second)
    validity = valid_between(now - @day, now + 365 * @day)
    ca_key = :public_key.generate_key({:namedCurve, @secp256r1})
    leaf_key = :public_key.generate_key({:namedCurve, @secp256r1})
    ca_name = name("h2flow throwaway CA " <> Base.encode16(:crypto.strong_rand_bytes(6)))
    ca_id = key_id(ca_key)

    ca =
      sign(
        ca_name,
        ca_name,
        validity,
        ca_key,
        ca_key,
        [
          ext(@basic_constraints, true, basic_constraints(cA: true)),
          ext(@key_usage, true, [:keyCertSign, :cRLSign]),
          ext(@subject_key_identifier, false, ca_id)
        ]
      )

    leaf =
      sign(
        name(hd(hostnames)),
        ca_name,
        validity,
        leaf_key,
        ca_key,
        [
          ext(@basic_constraints, false, basic_constraints(cA: false)),
          ext(@key_usage, true, [:digitalSignature]),
          ext(@ext_key_usage, false, [@server_auth]),
          ext(@subject_alt_name, false, Enum.map(hostnames, &general_name/1)),
          ext(@subject_key_identifier, false, key_id(leaf_key)),
          ext(@authority_key_identifier, false, authority_key_identifier(keyIdentifier: ca_id))
        ]
      )

    [
      cert: leaf,
      key: {:ECPrivateKey, :public_key.der_encode(:ECPrivateKey, leaf_key)},
      cacerts: [ca]
    ]
  end

  @doc """
  The CA certificates of `tls` (options from `self_signed/1`, or any with `cacerts:`) as PEM,
  the form clients read (`curl --cacert`, `certutil -A`, Node's and gRPC's `ca` options).

      iex> tls = H2Flow.TLS.self_signed()
      iex> [{:Certificate, der, :not_encrypted}] = :public_key.pem_decode(H2Flow.TLS.ca_pem(tls))
      iex> [der] == tls[:cacerts]
      true
  """
  @spec ca_pem(keyword()) :: binary()
  def ca_pem(tls) when is_list(tls) do
    tls
    |> Keyword.fetch!(:cacerts)
    |> Enum.map(&{:Certificate, &1, :not_encrypted})
    |> :public_key.pem_encode()
  end

  defp sign(subject, issuer, validity, key, issuer_key, extensions) do
    ec_private_key(publicKey: public) = key

    tbs =
      tbs_certificate(
        version: :v3,
        # Positive and at most 20 octets (RFC 5280 §4.1.2.2).
        serialNumber: :crypto.strong_rand_bytes(8) |> :binary.decode_unsigned() |> Kernel.+(1),
        signature: signature_algorithm(algorithm: @ecdsa_with_sha256, parameters: :asn1_NOVALUE),
        issuer: issuer,
        validity: validity,
        subject: subject,
        subjectPublicKeyInfo:
          public_key_info(
            algorithm:
              public_key_algorithm(
                algorithm: @ec_public_key,
                parameters: {:namedCurve, @secp256r1}
              ),
            subjectPublicKey: {:ECPoint, public}
          ),
        extensions: extensions
      )

    :public_key.pkix_sign(tbs, issuer_key)
  end

  defp name(common_name) do
    {:rdnSequence,
     [
       [attribute(type: @organization, value: {:utf8String, "h2flow"})],
       [attribute(type: @common_name, value: {:utf8String, common_name})]
     ]}
  end

  defp valid_between(from, to), do: validity(notBefore: time(from), notAfter: time(to))

  # UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
  defp time(unix) do
    {{y, mo, d}, {h, mi, s}} = :calendar.system_time_to_universal_time(unix, :second)
    rest = :io_lib.format(~c"~2..0w~2..0w~2..0w~2..0w~2..0wZ", [mo, d, h, mi, s])

    if y < 2050,
      do: {:utcTime, :lists.flatten(:io_lib.format(~c"~2..0w", [rem(y, 100)]) ++ rest)},
      else: {:generalTime, :lists.flatten(:io_lib.format(~c"~4..0w", [y]) ++ rest)}
  end

  defp ext(id, critical, value),
    do: extension(extnID: id, critical: critical, extnValue: value)

  defp general_name(host) do
    case :inet.parse_strict_address(String.to_charlist(host)) do
      {:ok, {a, b, c, d}} -> {:iPAddress, <<a, b, c, d>>}
      {:ok, ip} -> {:iPAddress, for(part <- Tuple.to_list(ip), into: <<>>, do: <<part::16>>)}
      {:error, _} -> {:dNSName, String.to_charlist(host)}
    end
  end

  # RFC 5280 §4.2.1.2, method (1): the SHA-1 of the public key's bits.
  defp key_id(ec_private_key(publicKey: public)), do: :crypto.hash(:sha, public)
end
