defmodule H2Flow.Connection.Handshake do
  @moduledoc false
  # Turns an accepted socket into a connection ready for the client's first bytes: the TLS
  # handshake (with ALPN: h2 and http/1.1 as the server's :http_versions allow), the addresses
  # and TLS details requests will carry, and the socket options of the connection. Any failure
  # is the peer's (or the network's) doing: it is reported as an error, never raised.

  alias H2Flow.Connection.Preface

  # Socket messages delivered before the connection re-arms {active, N}.
  @active_n 4

  def active_n, do: @active_n

  @doc """
  `{:ok, socket, conn, alpn}` (conn: what every request of the connection shares; alpn: the
  protocol ALPN chose, `:http2` or `:http1`, or `nil` on cleartext), or `{:error, reason,
  peer}` (`peer` nil when it is not known).
  """
  def run(transport, sock, config) do
    peer = with {:ok, peer} <- transport.peername(sock), do: peer, else: (_ -> nil)

    with true <- peer != nil || {:error, :enotconn},
         {:ok, sock} <- transport.handshake(sock, config.preface_timeout),
         {:ok, alpn} <- alpn(transport, sock, config),
         {:ok, local} <- transport.sockname(sock),
         :ok <- transport.setopts(sock, socket_opts(config)) do
      # Over TLS, the client's certificate and the session's parameters (Plug's get_ssl_data).
      cert = with {:ok, der} <- transport.peer_cert(sock), do: der, else: (_ -> nil)

      tls_info =
        with {:ok, info} <- transport.connection_information(sock), do: info, else: (_ -> nil)

      {:ok, sock, %{peer: peer, sock: local, cert: cert, tls_info: tls_info}, alpn}
    else
      {:error, reason} -> {:error, reason, peer}
    end
  end

  @doc "Whether a failed handshake counts as a failed TLS handshake (`:tls_handshake_failures`)."
  def tls_failure?(config, reason),
    do: config.transport == :tls and reason != :alpn_h2_not_negotiated

  # Over TLS, ALPN chose among what the server offered (H2Flow.Transport.TLSOptions); a client
  # that offered nothing speaks HTTP/1.1 (RFC 7301 does not make ALPN mandatory), which a
  # server without it answers in HTTP/1.1 terms.
  defp alpn(transport, sock, config) do
    case transport.negotiated_protocol(sock) do
      {:ok, "h2"} ->
        {:ok, :http2}

      {:ok, "http/1.1"} ->
        {:ok, :http1}

      :none when transport == H2Flow.Transport.TCP ->
        {:ok, nil}

      _ ->
        if :http1 in config.http_versions do
          {:ok, :http1}
        else
          _ = transport.send(sock, Preface.http1_refusal())
          {:error, :alpn_h2_not_negotiated}
        end
    end
  end

  defp socket_opts(config) do
    [
      active: @active_n,
      buffer: config.read_buffer,
      send_timeout: config.write_timeout,
      send_timeout_close: true
    ]
  end
end
