defmodule H2Flow.HTTP1DefencesTest do
  # The HTTP/1.1 defences over real sockets, each with the exact bytes the client gets: request
  # smuggling (Content-Length with Transfer-Encoding, differing Content-Lengths, bad chunk sizes
  # and extensions, obs-fold, bare CR or LF, whitespace before the colon) gets 400 and the
  # connection closes, with the request smuggled behind it never answered; Transfer-Encoding
  # other than chunked gets 501; request line and header limits 414 and 431; a head that does
  # not arrive within :header_timeout (slowloris) 408. Each refusal is counted by kind in
  # H2Flow.stats/1 (`http1.rejected`), and nothing is logged at :warning or above. Not async:
  # the log captured is the whole VM's, and other tests' handlers crash on purpose.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H1Client

  @smuggled "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

  defp start!(opts \\ []) do
    start_server!(
      fn req ->
        {:ok, body, req} = Req.read_body(req)
        Req.reply(200, %{}, "ok #{Req.path(req)} #{byte_size(body)}", req)
      end,
      opts
    )
  end

  # The engine's answer to a refused request: its status, the message citing the RFC, close.
  defp refusal(status, reason, message) do
    "HTTP/1.1 #{status} #{reason}\r\ncontent-type: text/plain\r\n" <>
      "content-length: #{byte_size(message) + 1}\r\nconnection: close\r\n\r\n#{message}\n"
  end

  defp exchange(port, bytes) do
    port |> H1Client.connect!() |> H1Client.send!(bytes) |> H1Client.read_to_close()
  end

  @cases [
    {"Content-Length and Transfer-Encoding",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" <>
       "0\r\n\r\n" <> @smuggled, 400, :content_length_with_transfer_encoding,
     "both Content-Length and Transfer-Encoding (RFC 9112 6.3; request smuggling, 11.2)"},
    {"Transfer-Encoding, then Content-Length",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n" <>
       "0\r\n\r\n" <> @smuggled, 400, :content_length_with_transfer_encoding,
     "both Content-Length and Transfer-Encoding (RFC 9112 6.3; request smuggling, 11.2)"},
    {"Content-Lengths that differ",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 38\r\n\r\nabc" <>
       @smuggled, 400, :conflicting_content_length,
     "Content-Length values that differ (RFC 9110 8.6; request smuggling, RFC 9112 11.2)"},
    {"a Content-Length list that differs",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 38\r\n\r\nabc" <> @smuggled, 400,
     :conflicting_content_length,
     "Content-Length values that differ (RFC 9110 8.6; request smuggling, RFC 9112 11.2)"},
    {"a Content-Length that is not a number",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400, :invalid_content_length,
     "Content-Length is not a decimal number (RFC 9110 8.6)"},
    {"a chunk size that is not hexadecimal",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" <> @smuggled, 400,
     :invalid_chunk, "chunk size is not a hexadecimal number (RFC 9112 7.1)"},
    {"a chunk size past 64 bits",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1FFFFFFFFFFFFFFFF\r\n", 400,
     :invalid_chunk, "chunk size too large (RFC 9112 7.1)"},
    {"a chunk size followed by whitespace and no extension",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
     400, :invalid_chunk, "invalid chunk extension (RFC 9112 7.1.1)"},
    {"a chunk extension that is not a token",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a@b\r\nabc\r\n0\r\n\r\n",
     400, :invalid_chunk, "invalid chunk extension (RFC 9112 7.1.1)"},
    {"chunk data longer than its size",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
     400, :invalid_chunk, "chunk data not followed by CRLF (RFC 9112 7.1)"},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n continued\r\n\r\n", 400, :obs_fold,
     "obsolete line folding (obs-fold) in a field line (RFC 9112 5.2)"},
    {"whitespace before the first field line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400,
     :obs_fold, "whitespace between the request line and the first field line (RFC 9112 2.2)"},
    {"a bare CR", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n", 400, :bare_cr,
     "CR not followed by LF (RFC 9112 2.2)"},
    {"a bare LF", "GET / HTTP/1.1\r\nHost: a\nX-B: 2\r\n\r\n", 400, :bare_lf,
     "LF not preceded by CR (RFC 9112 2.2)"},
    {"whitespace before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400,
     :whitespace_before_colon, "whitespace between a field name and the colon (RFC 9112 5.1)"},
    {"Transfer-Encoding in HTTP/1.0",
     "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     :transfer_encoding_in_http10,
     "Transfer-Encoding in an HTTP/1.0 request: its framing is faulty (RFC 9112 6.1)"},
    {"a transfer coding other than chunked (before chunked)",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
     :unsupported_transfer_coding,
     "transfer codings other than chunked are not implemented (RFC 9112 6.1)"},
    {"a final transfer coding other than chunked",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" <> @smuggled, 400,
     :chunked_not_last, "Transfer-Encoding whose final coding is not chunked (RFC 9112 6.3)"},
    {"chunked twice",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400,
     :chunked_not_last, "chunked applied more than once (RFC 9112 7)"},
    {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, :missing_host,
     "HTTP/1.1 request without a Host field (RFC 9112 3.2)"},
    {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, :invalid_host,
     "more than one Host field (RFC 9112 3.2)"},
    {"a version other than 1.0 and 1.1, after a good request",
     "GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.2\r\nHost: a\r\n\r\n", 505,
     :version_not_supported,
     "only HTTP/1.0 and HTTP/1.1 are served over this connection (RFC 9110 6.2)"}
  ]

  test "smuggling and framing: the exact answer, the connection closed, nothing smuggled" do
    {server, port} = start!()

    log =
      capture_log([level: :warning], fn ->
        for {what, bytes, status, kind, message} <- @cases do
          reason =
            %{400 => "Bad Request", 501 => "Not Implemented", 505 => "HTTP Version Not Supported"}[
              status
            ]

          out = exchange(port, bytes)
          expected = refusal(status, reason, message)
          assert String.ends_with?(out, expected), "#{what}: got #{inspect(out)}"
          prefix = binary_part(out, 0, byte_size(out) - byte_size(expected))

          # A good request before the bad one is answered first; nothing else is.
          if String.starts_with?(bytes, "GET /first"),
            do: assert(prefix =~ ~r/\AHTTP\/1.1 200 OK\r\n.*\r\n\r\nok \/first 0\z/s),
            else: assert(prefix == "", "#{what}: answered before the refusal: #{inspect(prefix)}")

          refute out =~ "smuggled", "#{what}: the smuggled request was answered"
          assert H2Flow.stats(server).http1.rejected[kind] >= 1, what
        end
      end)

    assert log == ""
    stats = H2Flow.stats(server).http1
    assert stats.rejected_total == length(@cases)
    # The smuggling attempts got no handler for what they smuggled.
    assert stat(server, :handlers_started) < length(@cases)
  end

  test "a client still sending after a refusal reads the answer, not a reset" do
    {_server, port} = start!()
    c = H1Client.connect!(port)
    head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    c = H1Client.send!(c, head)
    # The answer is on its way; the client goes on sending what it meant as the body.
    for _ <- 1..20, do: :gen_tcp.send(c.socket, :binary.copy("b", 16_384))

    assert H1Client.read_to_close(c) ==
             refusal(
               400,
               "Bad Request",
               "Content-Length values that differ (RFC 9110 8.6; request smuggling, RFC 9112 11.2)"
             )
  end

  test "identical Content-Lengths (as fields or a list) are one value: served" do
    {_server, port} = start!()

    for cl <- ["Content-Length: 3\r\nContent-Length: 3", "Content-Length: 3, 3"] do
      c = H1Client.connect!(port)
      c = H1Client.send!(c, "POST /x HTTP/1.1\r\nHost: a\r\n#{cl}\r\n\r\nabc")
      {r, _} = H1Client.recv_response!(c)
      assert {r.status, r.body} == {200, "ok /x 3"}
    end
  end

  test "limits: request line (414), field lines (431), header section (431)" do
    {server, port} = start!(max_request_line: 100, max_headers: 10, max_header_section: 1_000)

    long_line = "GET /" <> String.duplicate("a", 100) <> " HTTP/1.1\r\nHost: a\r\n\r\n"

    assert exchange(port, long_line) ==
             refusal(414, "URI Too Long", "request line longer than the limit (RFC 9112 3)")

    fields = for i <- 1..10, do: "X-#{i}: v\r\n"

    assert exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n#{fields}\r\n") ==
             refusal(
               431,
               "Request Header Fields Too Large",
               "more field lines than the limit (RFC 6585 5)"
             )

    big = "X-Big: " <> String.duplicate("b", 1_000) <> "\r\n"

    assert exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n#{big}\r\n") ==
             refusal(
               431,
               "Request Header Fields Too Large",
               "header section larger than the limit (RFC 6585 5)"
             )

    # Exactly at the limits: served.
    ok_fields = for i <- 1..9, do: "X-#{i}: v\r\n"

    c =
      H1Client.connect!(port) |> H1Client.send!("GET /ok HTTP/1.1\r\nHost: a\r\n#{ok_fields}\r\n")

    assert {%{status: 200}, _} = H1Client.recv_response!(c)

    assert %{request_line_too_long: 1, too_many_headers: 1, header_section_too_large: 1} =
             H2Flow.stats(server).http1.rejected
  end

  test "slowloris: a head sent a byte at a time gets 408 after :header_timeout" do
    {server, port} = start!(header_timeout: 500)
    c = H1Client.connect!(port)
    head = "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " <> String.duplicate("s", 100) <> "\r\n\r\n"
    started = System.monotonic_time(:millisecond)

    # A byte every 20 ms needs 2.8 s; the server answers and closes well before.
    dribble = fn dribble, i ->
      if i < byte_size(head) and :gen_tcp.send(c.socket, binary_part(head, i, 1)) == :ok do
        Process.sleep(20)
        dribble.(dribble, i + 1)
      else
        i
      end
    end

    sent = Task.async(fn -> dribble.(dribble, 0) end)

    assert H1Client.read_to_close(c, 10_000) ==
             refusal(
               408,
               "Request Timeout",
               "the request head did not arrive in time (RFC 9110 15.5.9)"
             )

    elapsed = System.monotonic_time(:millisecond) - started
    assert elapsed >= 500
    assert Task.await(sent) < byte_size(head)
    assert H2Flow.stats(server).http1.rejected.header_timeout == 1
  end

  test "an idle keep-alive connection closes silently after :idle_timeout" do
    {server, port} = start!(idle_timeout: 300)
    c = H1Client.connect!(port) |> H1Client.send!("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    {r, c} = H1Client.recv_response!(c)
    assert r.status == 200
    assert H1Client.read_to_close(c, 5_000) == ""
    eventually(fn -> H2Flow.stats(server).http1.idle_timeouts == 1 end)
  end

  test "pipelining beyond :max_pipelined: the socket waits, memory stays bounded, all answered" do
    {server, port} = start!(max_pipelined: 2)
    n = 500
    requests = for i <- 1..n, into: "", do: "GET /#{i} HTTP/1.1\r\nHost: a\r\n\r\n"
    c = H1Client.send!(H1Client.connect!(port), requests)

    {bodies, _} =
      Enum.map_reduce(1..n, c, fn _, c ->
        {r, c} = H1Client.recv_response!(c)
        {r.body, c}
      end)

    assert bodies == for(i <- 1..n, do: "ok /#{i} 0")
    stats = H2Flow.stats(server).http1
    assert stats.peak_pipelined <= 2
    assert stats.requests == n
  end
end
