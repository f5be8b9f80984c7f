defmodule H2Flow.HTTP1.EngineTest do
  # Drives the HTTP/1.1 engine through its NIFs with bytes, no socket: the event and return
  # shapes the connection process relies on.
  use ExUnit.Case, async: true

  alias H2Flow.Engine
  alias H2Flow.HTTP1.Engine, as: H1

  @get "GET /hello?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"

  defp new(opts \\ []) do
    {:ok, e} = H1.new(opts)
    e
  end

  defp get(path), do: "GET #{path} HTTP/1.1\r\nHost: a\r\n\r\n"

  test "a GET becomes H2Flow.Engine's request event plus its version; one flush answers it" do
    e = new()

    assert {:ok,
            [
              {:request, 1, "GET", "http", "example.com", "/hello", "x=1", nil, headers, true,
               :"HTTP/1.1"}
            ]} = H1.recv(e, @get)

    assert headers == %{"host" => "example.com", "accept" => "*/*"}

    assert :ok = H1.send_headers(e, 1, [{":status", "200"}, {"content-length", "5"}], false)
    assert {:ok, 0} = H1.send_data(e, 1, ["he", "llo"], true)
    assert {"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", [], :read} = H1.flush(e)
    assert %{wants_input: true, done: false, pipelined: 0, queued_bytes: 0} = H1.info(e)
    assert %{requests: 1, responses: 1, bytes_sent: 43, rejected_total: 0} = H1.stats(e)
  end

  test "a chunked upload split across reads; a read takes what is held, and the rest" do
    e = new(max_body_buffer: 10)
    head = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

    assert {:ok,
            [{:request, 1, "POST", _, _, "/up", "", nil, _, false, _}, {:data, 1, "abc", false}]} =
             H1.recv(e, head <> "6\r\nabc")

    assert {:wait, [{:data, 1, "defghijkl", false}]} = H1.recv(e, "def\r\n6\r\nghijkl\r\n")
    assert %{buffered_bytes: 12, wants_input: false} = H1.info(e)
    assert {_, [], :wait} = H1.flush(e)
    assert H1.read(e, 1, 1_000) == :wait
    assert %{buffered_bytes: 0, wants_input: true} = H1.info(e)

    assert {:ok,
            [{:data, 1, "m", false}, {:trailers, 1, [{"x-sum", "9"}]}, {:read_done, 1, :fin}]} =
             H1.recv(e, "1\r\nm\r\n0\r\nX-Sum: 9\r\n\r\n")

    assert H1.read(e, 1, 1_000) == :fin
  end

  test "a read completes at its length; its period; discard" do
    e = new()
    {:ok, _} = H1.recv(e, "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
    assert H1.read(e, 1, 10) == :wait

    assert {:ok, [{:data, 1, _, false}, {:read_done, 1, :more}]} =
             H1.recv(e, :binary.copy("x", 30))

    assert H1.read(e, 1, 10) == :wait
    assert H1.read_timeout(e, 1)
    refute H1.read_timeout(e, 1)
    :ok = H1.discard(e, 1)
    assert {:ok, []} = H1.recv(e, :binary.copy("y", 70))
    assert H1.read(e, 1, 10) == {:error, :closed}
  end

  test "a large body arrives as sub-binaries of the input, across 64 KiB NIF calls" do
    e = new()
    body = :binary.copy("0123456789abcdef", 10_000)
    wire = "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: #{byte_size(body)}\r\n\r\n" <> body
    assert {:ok, [{:request, 1, _, _, _, _, _, 160_000, _, false, _} | data]} = H1.recv(e, wire)
    assert length(data) == 3
    assert Enum.map_join(data, fn {:data, 1, bin, _} -> bin end) == body
    assert {:data, 1, _, true} = List.last(data)
    assert {:data, 1, first, false} = hd(data)
    assert :binary.referenced_byte_size(first) > byte_size(first), "not a copy"
  end

  test "pipelined requests beyond the limit come out of a later flush, answered in order" do
    e = new(max_pipelined: 1)

    # Request 2 is held back: the engine wants no more input.
    assert {:wait, [{:request, 1, _, _, _, "/1", _, _, _, true, _}]} =
             H1.recv(e, get("/1") <> get("/2"))

    assert %{wants_input: false, held_bytes: 28} = H1.info(e)
    assert :ok = H1.send_headers(e, 1, [{":status", "204"}], true)

    assert {"HTTP/1.1 204 No Content\r\n\r\n", [{:request, 2, _, _, _, "/2", _, _, _, true, _}],
            :wait} = H1.flush(e),
           "request 2 fills the pipeline again"

    assert :ok = H1.send_headers(e, 2, [{":status", "200"}], false)
    # Not yet flushed: the head (47 bytes) and the chunk (8).
    assert {:ok, 55} = H1.send_data(e, 2, "abc", false)
    assert {:ok, 0} = H1.send_data(e, 2, "", true)

    assert {"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", [],
            :read} = H1.flush(e)
  end

  test "send_body takes what the send queue has room for; the sender is told when to go on" do
    e = new(max_send_queue: 100)
    {:ok, _} = H1.recv(e, get("/"))
    :ok = H1.send_headers(e, 1, [{":status", "200"}], false)
    assert {:ok, taken, true} = H1.send_body(e, 1, :binary.copy("x", 200), false)
    assert taken < 100
    assert {_bytes, [{:send_window_open, 1}], :read} = H1.flush(e)
    # The queue was handed out: room for 100 bytes again.
    assert {:ok, 100, true} = H1.send_body(e, 1, :binary.copy("y", 200), false)
  end

  test "100-continue is written when the body is read" do
    e = new()
    wire = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    {:ok, [{:request, 1, _, _, _, _, _, 2, _, false, _}]} = H1.recv(e, wire)
    assert {"", [], :read} = H1.flush(e)
    assert H1.read(e, 1, 100) == :wait
    assert {"HTTP/1.1 100 Continue\r\n\r\n", [], :read} = H1.flush(e)
  end

  test "a smuggling attempt is refused with 400 and the connection is done" do
    e = new()
    wire = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"

    assert {:error, {:rejected, 400, :content_length_with_transfer_encoding, message}, []} =
             H1.recv(e, wire <> get("/smuggled"))

    assert message =~ "RFC 9112 6.3"
    {bytes, [], :done} = H1.flush(e)
    assert bytes =~ "HTTP/1.1 400 Bad Request\r\n"
    assert bytes =~ "connection: close\r\n"
    assert %{done: true, wants_input: false} = H1.info(e)

    assert %{rejected: %{content_length_with_transfer_encoding: 1}, rejected_total: 1} =
             H1.stats(e)
  end

  test "a refused chunked body cancels its request" do
    e = new()
    wire = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n"

    assert {:error, {:rejected, 400, :invalid_chunk, _},
            [{:request, 1, _, _, _, _, _, _, _, false, _}, {:cancelled, 1}]} = H1.recv(e, wire)

    assert {:error, :closed} = H1.send_headers(e, 1, [{":status", "200"}], true)
  end

  test "a head that does not arrive in time gets 408" do
    e = new(header_timeout: 50)
    {:ok, []} = H1.recv(e, "GET / HTTP/1.1\r\n")
    %{deadline_ms: ms} = H1.info(e)
    assert ms in 0..50
    # The deadline is on the monotonic clock: past it, the check is certain to fire.
    Process.sleep(ms + 1)
    assert {:error, {:rejected, 408, :header_timeout, _}} = H1.check_timeouts(e)
    assert {"HTTP/1.1 408 Request Timeout\r\n" <> _, [], :done} = H1.flush(e)
  end

  test "shutdown answers what was announced, then the engine is done" do
    e = new()
    {:ok, _} = H1.recv(e, get("/"))
    :ok = H1.shutdown(e)
    :ok = H1.send_headers(e, 1, [{":status", "200"}, {"content-length", "0"}], true)
    {bytes, [], :done} = H1.flush(e)
    assert bytes =~ "connection: close"
    assert %{done: true} = H1.info(e)
  end

  test "an h2c upgrade hands over to an HTTP/2 engine that serves stream 1" do
    e = new()
    settings = Base.url_encode64(<<4::16, 100_000::32>>, padding: false)
    preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    wire =
      "POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" <>
        "HTTP2-Settings: #{settings}\r\nContent-Length: 4\r\n\r\nbody" <> preface

    assert {:wait, [{:upgrade, [{4, 100_000}], headers, "body", ^preface} = upgrade]} =
             H1.recv(e, wire)

    assert {":authority", "a"} in headers
    refute List.keymember?(headers, "connection", 0)

    assert {"HTTP/1.1 101 Switching Protocols\r\n" <> _, [], :done} = H1.flush(e)
    assert %{done: true} = H1.info(e)

    # Stream 1 is announced with its body.
    assert {:ok, h2, [announced, {:data, 1, "body", true}]} =
             H1.http2_engine(upgrade, max_concurrent_streams: 10)

    assert elem(announced, 1) == 1
    # The client's preface and an empty SETTINGS frame, written with bit syntax.
    assert {:ok, _} = Engine.recv(h2, preface <> <<0::24, 4, 0, 0::32>>)
    :ok = Engine.send_headers(h2, 1, [{":status", "204"}], true)
    frames = frames(Engine.flush(h2))
    assert [{4, 0, 0} | _] = frames, "the server preface (SETTINGS) comes first"
    assert {1, 1, 1} in for({type, flags, id} <- frames, do: {type, Bitwise.band(flags, 1), id})
  end

  # {type, flags, stream id} of each frame.
  defp frames(<<len::24, type, flags, _::1, id::31, _::binary-size(len), rest::binary>>),
    do: [{type, flags, id} | frames(rest)]

  defp frames(""), do: []

  test "detect/2 tells the HTTP/2 preface from an HTTP/1.x request line" do
    assert H1.detect("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == :http2
    assert H1.detect("PRI * HTTP/2") == :more
    assert H1.detect("GET / HTTP/1.1\r\n") == :http1
    assert H1.detect("GET / HT") == :more
    assert H1.detect("INVALID CONNECTION PREFACE\r\n\r\n") == :unknown
  end

  test "options are validated" do
    assert_raise ArgumentError, ~r/unknown HTTP\/1.1 engine option :nope/, fn ->
      H1.new(nope: 1)
    end

    assert_raise ArgumentError, ~r/:max_headers/, fn -> H1.new(max_headers: 0) end
    assert_raise ArgumentError, ~r/:h2c_upgrade/, fn -> H1.new(h2c_upgrade: :yes) end

    assert {:error, "max_request_line must be within 1..max_header_section"} =
             H1.new(max_request_line: 100, max_header_section: 50)
  end
end
