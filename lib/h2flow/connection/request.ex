defmodule H2Flow.Connection.Request do
  @moduledoc false
  # Builds the H2Flow.Req a handler gets from the request the engine validated (method, target,
  # authority, content-length as an integer, headers with repeated fields joined): nothing is
  # parsed again here.

  alias H2Flow.Req

  @doc "What every request of a connection shares: the peer, the local address, TLS details."
  def context(config, conn), do: Map.put(conn, :tls, config.transport == :tls)

  @doc """
  The request of a `{:request, ...}` engine event (HTTP/2's, or HTTP/1.1's with the version as
  an 11th element); `body` is `nil` (no body), `:unread` (a body the handler reads) or the
  pieces of a body that arrived whole with the request.
  """
  def build(
        {:request, id, method, scheme, authority, path, qs, length, headers, end?},
        ctx,
        body
      ),
      do:
        build(
          {:request, id, method, scheme, authority, path, qs, length, headers, end?, :"HTTP/2"},
          ctx,
          body
        )

  def build(
        {:request, id, method, scheme, authority, path, qs, length, headers, _end?, version},
        ctx,
        body
      ) do
    %Req{
      version: version,
      conn: self(),
      stream_id: id,
      method: method,
      # CONNECT has no :scheme (RFC 9113 8.5): the transport's.
      scheme: if(scheme == "", do: if(ctx.tls, do: "https", else: "http"), else: scheme),
      authority: if(authority == "", do: nil, else: authority),
      path: path,
      qs: qs,
      peer: ctx.peer,
      sock: ctx.sock,
      cert: ctx.cert,
      tls_info: ctx.tls_info,
      headers: headers,
      content_length: length,
      has_body: body != nil,
      body: if(is_list(body), do: body)
    }
  end

  def peer_string({ip, port}), do: "#{:inet.ntoa(ip)}:#{port}"
  def peer_string(_), do: "unknown peer"
end
