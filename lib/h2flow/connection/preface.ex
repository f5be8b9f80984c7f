defmodule H2Flow.Connection.Preface do
  @moduledoc false
  # Tells what a client sent first on h2c: the HTTP/2 connection preface — or anything else
  # that is not an HTTP/1.x request line, which the engine answers with GOAWAY PROTOCOL_ERROR
  # (RFC 9113 §3.4) — or a complete HTTP/1.x request line (RFC 9112 §3), which gets a plain
  # answer in HTTP/1.1. Over TLS, ALPN already chose h2: everything goes to the engine.

  @preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  # A request line longer than this is not worth waiting for.
  @max_line 8_192

  @doc "`:http2`, `:http1`, or `{:more, bytes}` when the bytes so far cannot tell."
  @spec classify(binary(), :tcp | :tls) :: :http2 | :http1 | {:more, binary()}
  def classify(_data, :tls), do: :http2

  def classify(data, :tcp) do
    n = min(byte_size(data), byte_size(@preface))

    cond do
      binary_part(data, 0, n) == binary_part(@preface, 0, n) -> :http2
      request_line?(data) -> :http1
      byte_size(data) < @max_line and request_line_start?(data) -> {:more, data}
      true -> :http2
    end
  end

  # method SP request-target SP HTTP/1.x CRLF (a bare LF is tolerated, RFC 9112 §2.2)
  defp request_line?(data) do
    case :binary.split(data, "\n") do
      [line, _rest] -> Regex.match?(~r/\A[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/1\.\d\r?\z/, line)
      [_] -> false
    end
  end

  # Could still become a request line once the rest of it arrives.
  defp request_line_start?(data) do
    not String.contains?(data, "\n") and
      Regex.match?(
        ~r/\A[!#$%&'*+.^_`|~0-9A-Za-z-]+( \S*( (H(T(T(P(\/(1(\.\d?)?)?)?)?)?)?)?)?)?\r?\z/,
        data
      )
  end

  @doc "The plain-text answer to an HTTP/1.x request."
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
