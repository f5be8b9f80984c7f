defmodule H2Flow.TLSTest do
  # H2Flow.TLS.self_signed/1: certificates every TLS stack accepts with the CA trusted. Issue
  # 14 (#5): :public_key.pkix_test_data/1 put parameters in the ECDSA signatureAlgorithm, which
  # RFC 5758 §3.2 forbids; BoringSSL (gRPC) and NSS (Firefox) rejected the certificate while
  # OpenSSL and Go accepted it. The gRPC and Firefox checks are in the interop suite
  # (test/interop/grpc_test.exs, test/interop/firefox_test.exs); here: the DER itself, OpenSSL
  # and curl.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  doctest H2Flow.TLS

  # AlgorithmIdentifier { ecdsa-with-SHA256 } with the parameters absent, as DER.
  @ecdsa_with_sha256 <<0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02>>

  setup_all do
    %{tls: H2Flow.TLS.self_signed(["localhost", "127.0.0.1", "::1"])}
  end

  test "the signature algorithm of both certificates carries no parameters (RFC 5758 §3.2)",
       %{tls: tls} do
    [ca] = tls[:cacerts]

    for der <- [ca, tls[:cert]] do
      {:Certificate, tbs, {:AlgorithmIdentifier, oid, params}, _signature} =
        :public_key.der_decode(:Certificate, der)

      assert oid == {1, 2, 840, 10045, 4, 3, 2}
      assert params == :asn1_NOVALUE
      # The copy inside the signed part says the same.
      assert {:AlgorithmIdentifier, ^oid, :asn1_NOVALUE} = elem(tbs, 3)
      # Both copies, byte for byte: nothing (no NULL, no curve) after the OID.
      assert length(:binary.matches(der, @ecdsa_with_sha256)) == 2
    end
  end

  test "a CA that may only sign certificates, and a server certificate for the names given",
       %{tls: tls} do
    [ca] = tls[:cacerts]
    ca_otp = :public_key.pkix_decode_cert(ca, :otp)
    leaf_otp = :public_key.pkix_decode_cert(tls[:cert], :otp)

    ca_ext = extensions(ca_otp)
    assert {true, {:BasicConstraints, true, _}} = ca_ext[{2, 5, 29, 19}]
    assert {true, usage} = ca_ext[{2, 5, 29, 15}]
    assert Enum.sort(usage) == [:cRLSign, :keyCertSign]
    assert :public_key.pkix_is_self_signed(ca)

    leaf_ext = extensions(leaf_otp)
    assert {_, {:BasicConstraints, false, _}} = leaf_ext[{2, 5, 29, 19}]
    assert {true, [:digitalSignature]} = leaf_ext[{2, 5, 29, 15}]
    assert {false, [{1, 3, 6, 1, 5, 5, 7, 3, 1}]} = leaf_ext[{2, 5, 29, 37}]

    assert {false,
            [{:dNSName, ~c"localhost"}, {:iPAddress, <<127, 0, 0, 1>>}, {:iPAddress, ipv6}]} =
             leaf_ext[{2, 5, 29, 17}]

    assert ipv6 == <<1::128>>
    assert :public_key.pkix_is_issuer(tls[:cert], ca)
    assert {:ok, _} = :public_key.pkix_path_validation(ca, [tls[:cert]], [])
    assert :public_key.pkix_verify_hostname(tls[:cert], dns_id: ~c"localhost")
    assert :public_key.pkix_verify_hostname(tls[:cert], ip: {127, 0, 0, 1})
    refute :public_key.pkix_verify_hostname(tls[:cert], dns_id: ~c"example.com")
  end

  test "each call makes a new CA: another name, serial number and key" do
    [a, b] =
      for _ <- 1..2,
          do: :public_key.pkix_decode_cert(hd(H2Flow.TLS.self_signed()[:cacerts]), :otp)

    tbs = fn cert -> elem(cert, 1) end
    refute elem(tbs.(a), 2) == elem(tbs.(b), 2)
    refute elem(tbs.(a), 6) == elem(tbs.(b), 6)
  end

  @tag :tmp_dir
  test "OpenSSL verifies the certificate against the CA, for its names and as a TLS server",
       %{tls: tls, tmp_dir: dir} do
    ca = Path.join(dir, "ca.pem")
    leaf = Path.join(dir, "leaf.pem")
    File.write!(ca, H2Flow.TLS.ca_pem(tls))
    File.write!(leaf, :public_key.pem_encode([{:Certificate, tls[:cert], :not_encrypted}]))
    verify = ["verify", "-CAfile", ca, "-purpose", "sslserver", "-x509_strict"]

    assert {"#{leaf}: OK\n", 0} ==
             System.cmd("openssl", verify ++ ["-verify_hostname", "localhost", leaf],
               stderr_to_stdout: true
             )

    assert {_, 0} =
             System.cmd("openssl", verify ++ ["-verify_ip", "127.0.0.1", leaf],
               stderr_to_stdout: true
             )

    assert {out, 2} =
             System.cmd("openssl", verify ++ ["-verify_hostname", "example.com", leaf],
               stderr_to_stdout: true
             )

    assert out =~ "hostname mismatch"
  end

  # The moduledoc's example: a server with the certificate, a client told to trust the CA.
  @tag :tmp_dir
  test "curl --cacert with the CA from ca_pem/1 gets an answer over h2, by name and by address",
       %{tls: tls, tmp_dir: dir} do
    {_server, port} =
      start_server!(&H2Flow.Req.reply(200, %{}, "hello", &1), transport: :tls, tls: tls)

    File.write!(Path.join(dir, "ca.pem"), H2Flow.TLS.ca_pem(tls))

    for url <- ["https://localhost:#{port}/", "https://127.0.0.1:#{port}/"] do
      args = ["-sS", "--http2", "--cacert", "ca.pem", "-w", " %{http_version}", url]
      args = ["--resolve", "localhost:#{port}:127.0.0.1" | args]
      assert {"hello 2", 0} = System.cmd("curl", args, cd: dir, stderr_to_stdout: true)
    end
  end

  defp extensions(otp_cert) do
    tbs = elem(otp_cert, 1)

    for {:Extension, id, critical, value} <- elem(tbs, 10), into: %{} do
      {id, {critical == true, value}}
    end
  end
end
