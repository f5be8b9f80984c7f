defmodule H2Flow.Client.Options do
  @moduledoc false
  # The client's options: the URL, the documented defaults, validation (unknown keys raise), and
  # the socket and TLS options they make. H2Flow.Client's moduledoc documents each of them.

  @defaults [
    connect_timeout: 10_000,
    write_timeout: 30_000,
    read_buffer: 262_144,
    max_pending_requests: 10_000,
    tls: [],
    cacerts: nil,
    cacertfile: nil,
    name: nil
  ]

  @doc false
  def defaults, do: @defaults

  @doc false
  # The configuration the connection process starts with.
  def config!(url, opts) when is_binary(url) and is_list(opts) do
    {engine_opts, opts} = Keyword.split(opts, H2Flow.Engine.Options.keys())
    opts = Keyword.merge(@defaults, opts)

    for {key, _} <- opts, not Keyword.has_key?(@defaults, key) do
      raise ArgumentError, "unknown option #{inspect(key)}"
    end

    # Validated here, so that a bad option raises in the caller rather than in the process.
    _ = H2Flow.Engine.Options.validate!(engine_opts, :client)
    c = Map.new(opts)

    for key <- [:connect_timeout, :write_timeout, :read_buffer, :max_pending_requests] do
      check!(is_integer(c[key]) and c[key] > 0, "#{inspect(key)} must be a positive integer")
    end

    check!(is_list(c.tls), ":tls must be a keyword list of :ssl options")
    {scheme, host, port} = parse_url!(url)
    transport = if scheme == "https", do: H2Flow.Transport.SSL, else: H2Flow.Transport.TCP

    Map.merge(c, %{
      url: url,
      scheme: scheme,
      host: host,
      port: port,
      authority: authority(scheme, host, port),
      transport: transport,
      engine: engine_opts
    })
  end

  def config!(url, _opts),
    do: raise(ArgumentError, "the URL must be a string, got: #{inspect(url)}")

  defp parse_url!(url) do
    case URI.parse(url) do
      %URI{scheme: scheme, host: host, port: port}
      when scheme in ["http", "https"] and host != "" and host != nil ->
        {scheme, host, port}

      _ ->
        raise ArgumentError,
              "expected an http:// or https:// URL with a host, got: #{inspect(url)}"
    end
  end

  # RFC 9113 8.3.1: the authority, with the port unless it is the scheme's default.
  defp authority(scheme, host, port) do
    host = if String.contains?(host, ":"), do: "[#{host}]", else: host
    if {scheme, port} in [{"http", 80}, {"https", 443}], do: host, else: "#{host}:#{port}"
  end

  @doc false
  # The options for H2Flow.Transport.connect/4.
  def socket_opts(c) do
    tcp = [nodelay: true, send_timeout: c.write_timeout, send_timeout_close: true]
    if c.scheme == "https", do: tcp ++ tls_opts(c), else: tcp
  end

  # ALPN h2 only; the server's certificate is verified against the system's CA store unless
  # :cacerts or :cacertfile say otherwise (or :tls sets :verify itself).
  defp tls_opts(c) do
    base = [alpn_advertised_protocols: ["h2"], versions: [:"tlsv1.3", :"tlsv1.2"]]

    verify =
      if Keyword.has_key?(c.tls, :verify) do
        []
      else
        [
          verify: :verify_peer,
          customize_hostname_check: [
            match_fun: :public_key.pkix_verify_hostname_match_fun(:https)
          ]
        ] ++ ca_opts(c)
      end

    sni =
      case :inet.parse_address(String.to_charlist(c.host)) do
        {:ok, _ip} -> []
        _ -> [server_name_indication: String.to_charlist(c.host)]
      end

    Keyword.merge(base ++ verify ++ sni, c.tls)
  end

  defp ca_opts(%{cacerts: certs}) when is_list(certs), do: [cacerts: certs]
  defp ca_opts(%{cacertfile: file}) when is_binary(file), do: [cacertfile: file]
  defp ca_opts(_c), do: [cacerts: system_cacerts()]

  defp system_cacerts do
    :public_key.cacerts_get()
  rescue
    _ -> []
  end

  defp check!(true, _message), do: :ok
  defp check!(false, message), do: raise(ArgumentError, message)
end
