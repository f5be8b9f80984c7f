defmodule H2Flow.Connection.Preface do
  @moduledoc false
  # Chooses the protocol of a connection from what ALPN chose (TLS) or from the client's first
  # bytes (cleartext, h2flow_core::http1::detect): the HTTP/2 connection preface (prior
  # knowledge), an HTTP/1.x request line (RFC 9112 §3; an `Upgrade: h2c` request among them),
  # or anything else, which goes to the HTTP/2 engine so that an invalid preface is answered
  # with GOAWAY PROTOCOL_ERROR (RFC 9113 §3.4). A server without HTTP/1.1 (`http_versions:
  # [:http2]`) answers a request line in plain text.

  alias H2Flow.Connection.{HTTP1, HTTP2}
  alias H2Flow.HTTP1.Engine, as: H1

  @doc """
  `{protocol_module, bytes}` to start the protocol with, `{:more, bytes}` when the bytes so far
  cannot tell, or `:refuse` for an HTTP/1.x request to a server without HTTP/1.1.
  """
  @spec select(binary(), :http1 | :http2 | nil, map()) ::
          {module(), binary()} | {:more, binary()} | :refuse
  def select(data, :http2, _config), do: {HTTP2, data}
  def select(data, :http1, _config), do: {HTTP1, data}

  def select(data, nil, config) do
    http1? = :http1 in config.http_versions
    http2? = :http2 in config.http_versions

    case H1.detect(data, config.http1.max_request_line) do
      :more -> {:more, data}
      :http1 when http1? -> {HTTP1, data}
      :http1 -> :refuse
      _preface_or_unknown when http2? -> {HTTP2, data}
      # An HTTP/1.1-only server: the engine answers what is not a request (400, or 505 for
      # the HTTP/2 preface's "PRI * HTTP/2.0").
      _ -> {HTTP1, data}
    end
  end

  @doc "The plain-text answer to an HTTP/1.x request on a server that speaks HTTP/2 only."
  @spec http1_refusal() :: iodata()
  def http1_refusal do
    body = "This server speaks HTTP/2 only: h2 over TLS (ALPN), or h2c with prior knowledge.\n"

    [
      "HTTP/1.1 505 HTTP Version Not Supported\r\nconnection: close\r\n",
      "content-type: text/plain\r\ncontent-length: #{byte_size(body)}\r\n\r\n",
      body
    ]
  end
end
