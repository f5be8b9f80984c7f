defmodule H2Flow.TLS do
  @moduledoc """
  TLS helpers for demos and tests.

      {:ok, server} =
        H2Flow.start_link(handler: MyApp.Hello, port: 8443, transport: :tls, tls: H2Flow.TLS.self_signed())

  Clients must be told to accept the certificate (`curl -k`, a browser's
  `--ignore-certificate-errors`): it is signed by a throwaway CA made in memory.
  """

  @doc """
  Makes a certificate for `hostnames` (default `["localhost"]`), signed by a throwaway CA, with
  its key, in memory (`:public_key`, ECDSA P-256). Returns `:ssl` options: `cert:`, `key:` and
  `cacerts:`.
  """
  @spec self_signed([String.t()]) :: keyword()
  def self_signed(hostnames \\ ["localhost"]) do
    names = for h <- hostnames, do: {:dNSName, String.to_charlist(h)}
    # TLS 1.3 refuses the default SHA-1 signatures of :public_key's test certificates.
    key = [{:key, {:namedCurve, :secp256r1}}, {:digest, :sha256}]

    %{server_config: server} =
      :public_key.pkix_test_data(%{
        server_chain: %{
          root: key,
          peer: [{:extensions, [subject_alt_name(names)]} | key]
        },
        client_chain: %{root: key, peer: key}
      })

    Keyword.take(server, [:cert, :key, :cacerts])
  end

  defp subject_alt_name(names) do
    {:Extension, {2, 5, 29, 17}, false, names}
  end
end
