defmodule H2Flow.Transport.TLSOptions do
  @moduledoc false
  # The :ssl options of a TLS listener: what h2flow adds (ALPN h2 and http/1.1, TLS versions,
  # ciphers, quiet alerts) and the check that the certificate and key are usable before listening, so
  # that a wrong path or a key that does not match its certificate stops start_link with an
  # error naming the option, instead of failing every handshake later.

  require Record

  @hrl "public_key/include/public_key.hrl"
  Record.defrecordp(:otp_cert, :OTPCertificate, Record.extract(:OTPCertificate, from_lib: @hrl))

  Record.defrecordp(
    :otp_tbs,
    :OTPTBSCertificate,
    Record.extract(:OTPTBSCertificate, from_lib: @hrl)
  )

  Record.defrecordp(
    :otp_key_info,
    :OTPSubjectPublicKeyInfo,
    Record.extract(:OTPSubjectPublicKeyInfo, from_lib: @hrl)
  )

  @type error :: {:tls_config, atom(), String.t()}

  @key_types [:RSAPrivateKey, :DSAPrivateKey, :ECPrivateKey, :PrivateKeyInfo]

  @doc """
  The options given plus h2flow's; those given win (`:log_level`, say). ALPN offers what
  `versions` (the server's `:http_versions`) allow, h2 first: a client offering both gets h2.
  """
  def listen_options(tls, versions \\ [:http1, :http2]) do
    alpn = for {v, name} <- [http2: "h2", http1: "http/1.1"], v in versions, do: name

    ours = [
      alpn_preferred_protocols: alpn,
      versions: [:"tlsv1.3", :"tlsv1.2"],
      ciphers: ciphers(),
      # A failed handshake is logged once by the connection, at :debug; :ssl would log its
      # alert at :notice for every client that gets it wrong.
      log_level: :none
    ]

    tls ++ Enum.reject(ours, fn {key, _} -> Keyword.has_key?(tls, key) end)
  end

  # RFC 9113 9.2.2: TLS 1.2 must use an ephemeral key exchange and an AEAD cipher.
  defp ciphers do
    tls12 =
      :ssl.filter_cipher_suites(:ssl.cipher_suites(:default, :"tlsv1.2"),
        key_exchange: &(&1 in [:ecdhe_ecdsa, :ecdhe_rsa]),
        cipher: &(&1 in [:aes_128_gcm, :aes_256_gcm, :chacha20_poly1305])
      )

    :ssl.cipher_suites(:default, :"tlsv1.3") ++ tls12
  end

  @doc """
  Checks that the options give a certificate and a key that can be read, parsed and belong
  together (and that CA certificates parse): `:ok` or `{:error, {:tls_config, option, why}}`.
  """
  @spec check(keyword()) :: :ok | {:error, error()}
  def check(tls) do
    cond do
      Keyword.has_key?(tls, :certs_keys) ->
        each(Keyword.fetch!(tls, :certs_keys), &check_pair(Map.to_list(&1), tls))

      Keyword.has_key?(tls, :sni_fun) ->
        if Keyword.has_key?(tls, :certfile) or Keyword.has_key?(tls, :cert),
          do: check_pair(tls, tls),
          else: check_cacerts(tls)

      true ->
        check_pair(tls, tls)
    end
  catch
    {:tls_config, _, _} = error -> {:error, error}
  end

  defp each(list, fun) when is_list(list), do: Enum.each(list, fun)
  defp each(_, _), do: fail(:certs_keys, "must be a list of maps")

  # `opts` holds a certificate and its key (the top-level options, or one of :certs_keys);
  # `top` the options that apply to all (:password, :cacertfile, ...).
  defp check_pair(opts, top) do
    password = Keyword.get(opts, :password, Keyword.get(top, :password, ""))
    certs = certs(opts)
    key = key(opts, password)
    if certs != [] and key != nil, do: matching!(hd(certs), key, opts)
    check_cacerts(top)
    if Keyword.has_key?(top, :dhfile), do: pem!(top, :dhfile, [:DHParameter])
    :ok
  end

  defp check_cacerts(tls) do
    if Keyword.has_key?(tls, :cacertfile), do: pem!(tls, :cacertfile, [:Certificate])

    for der <- List.wrap(Keyword.get(tls, :cacerts, [])) do
      decode_cert!(der, :cacerts)
    end

    :ok
  end

  # The certificate chain, leaf first, from :cert (DER) or :certfile (PEM).
  defp certs(opts) do
    case {Keyword.fetch(opts, :cert), Keyword.fetch(opts, :certfile)} do
      {{:ok, der}, _} ->
        for der <- List.wrap(der), do: decode_cert!(der, :cert)

      {:error, {:ok, _}} ->
        for {:Certificate, der, _} <- pem!(opts, :certfile, [:Certificate]),
            do: decode_cert!(der, :certfile)

      {:error, :error} ->
        fail(:cert, "a TLS server needs a certificate: :certfile (PEM) or :cert (DER)")
    end
  end

  defp decode_cert!(der, option) when is_binary(der) do
    :public_key.pkix_decode_cert(der, :otp)
  rescue
    _ -> fail(option, "a certificate does not parse (#{byte_size(der)} bytes of DER)")
  end

  defp decode_cert!(other, option),
    do: fail(option, "expected DER binaries, got: #{inspect(other, limit: 3)}")

  # The private key (decoded), from :key ({type, DER}), :keyfile, or the :certfile as :ssl
  # does when there is no :keyfile; nil when it cannot be decoded here (an engine key).
  defp key(opts, password) do
    cond do
      Keyword.has_key?(opts, :key) ->
        case Keyword.fetch!(opts, :key) do
          {type, der} when type in @key_types and is_binary(der) ->
            try do
              :public_key.der_decode(type, der)
            rescue
              _ -> fail(:key, "the #{type} key does not parse")
            end

          %{} ->
            nil

          other ->
            # Never shown: it may be key material.
            _ = other
            fail(:key, "expected {type, der} with type one of #{inspect(@key_types)}")
        end

      Keyword.has_key?(opts, :keyfile) ->
        pem_key!(opts, :keyfile, password)

      Keyword.has_key?(opts, :certfile) ->
        pem_key!(opts, :certfile, password)

      true ->
        fail(:key, "a TLS server needs a private key: :keyfile (PEM) or :key (DER)")
    end
  end

  defp pem_key!(opts, option, password) do
    keys = [:EncryptedPrivateKeyInfo | @key_types]

    case Enum.filter(pem!(opts, option, nil), &(elem(&1, 0) in keys)) do
      [entry | _] ->
        try do
          :public_key.pem_entry_decode(entry, to_charlist(password))
        rescue
          _ -> fail(option, "cannot decode its private key (encrypted? check :password)")
        catch
          _, _ -> fail(option, "cannot decode its private key (encrypted? check :password)")
        end

      [] ->
        fail(option, "#{Keyword.fetch!(opts, option)} holds no private key")
    end
  end

  # The PEM entries of a file option, at least one of `types` (any entry when nil).
  defp pem!(opts, option, types) do
    path = opts |> Keyword.fetch!(option) |> to_string()

    entries =
      case File.read(path) do
        {:ok, pem} ->
          try do
            :public_key.pem_decode(pem)
          rescue
            _ -> []
          end

        {:error, reason} ->
          fail(option, "cannot read #{path}: #{:file.format_error(reason)}")
      end

    wanted = if types, do: Enum.filter(entries, &(elem(&1, 0) in types)), else: entries

    if wanted == [] do
      what = if types, do: Enum.map_join(types, " or ", &Atom.to_string/1), else: "PEM entry"
      fail(option, "#{path} holds no #{what}")
    end

    entries
  end

  # The key must be the private half of the leaf certificate's public key.
  defp matching!(cert, key, opts) do
    otp_cert(tbsCertificate: tbs) = cert
    otp_tbs(subjectPublicKeyInfo: info) = tbs
    otp_key_info(subjectPublicKey: public) = info

    matches =
      case {public, key} do
        {{:RSAPublicKey, n, e}, {:RSAPrivateKey, _, n2, e2, _, _, _, _, _, _, _}} ->
          n == n2 and e == e2

        {{:ECPoint, point}, key} when elem(key, 0) == :ECPrivateKey ->
          point == elem(key, 4) or not is_binary(elem(key, 4))

        _ ->
          true
      end

    unless matches do
      option = if Keyword.has_key?(opts, :key), do: :key, else: :keyfile
      fail(option, "the private key does not match the certificate's public key")
    end
  end

  defp fail(option, message), do: throw({:tls_config, option, message})
end
