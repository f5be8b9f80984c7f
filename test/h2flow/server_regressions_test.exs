defmodule H2Flow.ServerRegressionsTest do
  # What real clients and attackers found (issue 14), each over a real socket, each written to
  # fail on the code before its fix: a client that cannot end a body of one window, a TLS close
  # race that crashed the connection process and logged its state, two identical
  # content-lengths, zero-window peers that pinned memory for ever, an invalid preface answered
  # in HTTP/1.1, probe PINGs on a trickle, frames counted that were never written, :protocol,
  # and the 431s that did not count toward the reset-flood defence.
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers
  import H2Flow.Test.AttackHelpers, only: [read_to_close: 1]

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  @kib 1024
  @mib 1024 * 1024

  defp echo_size do
    fn req ->
      {size, req} = read_size(req, 0)
      Req.reply(200, %{}, Integer.to_string(size), req)
    end
  end

  defp read_size(req, acc) do
    case Req.read_body(req) do
      {:ok, data, req} -> {acc + byte_size(data), req}
      {:more, data, req} -> read_size(req, acc + byte_size(data))
    end
  end

  defp post(conn, id, length) do
    headers = [
      {":method", "POST"},
      {":scheme", "http"},
      {":authority", "localhost"},
      {":path", "/"}
    ]

    headers = if length, do: headers ++ [{"content-length", to_string(length)}], else: headers
    :ok = H2Client.send_headers(conn, id, headers, false)
  end

  # Node.js (nghttp2) holds back even the empty DATA frame that carries END_STREAM while its
  # stream window is 0: it sent exactly its content-length, one whole window, and waited for
  # ever. The client here does the same: it ends the stream only once the window opens.
  test "a client that sent exactly one window with a content-length can still end the stream" do
    {_server, port} = start_server!(echo_size())
    conn = connect!(port)
    window = 256 * @kib
    post(conn, 1, window)
    for _ <- 1..16, do: :ok = H2Client.send_data(conn, 1, :binary.copy("n", 16 * @kib), false)

    assert {:ok, conn, _} =
             H2Client.recv_until(conn, &match?({:window_update, 1, _}, &1), 10_000),
           "no stream WINDOW_UPDATE: the client can never send END_STREAM"

    :ok = H2Client.send_data(conn, 1, "", true)
    assert {:ok, _, %{status: 200, body: "262144"}} = H2Client.read_response(conn, 1, 10_000)
  end

  test "two identical content-length fields: the request is served and the connection lives" do
    {server, port} = start_server!(echo_size())
    conn = connect!(port)

    :ok =
      H2Client.send_headers(
        conn,
        1,
        [
          {":method", "POST"},
          {":scheme", "http"},
          {":authority", "localhost"},
          {":path", "/"},
          {"content-length", "5"},
          {"content-length", "5"}
        ],
        false
      )

    :ok = H2Client.send_data(conn, 1, "hello", true)
    assert {:ok, conn, %{status: 200, body: "5"}} = H2Client.read_response(conn, 1)
    conn = %{conn | next_stream_id: 3}
    {:ok, conn, id} = H2Client.request(conn, "POST", "/", [], "again")
    assert {:ok, _, %{status: 200, body: "5"}} = H2Client.read_response(conn, id)
    assert stat(server, :handler_crashes) == 0
  end

  # The connection process crashed on :ssl.setopts/2 (einval) when the client closed right
  # after the handshake, and the crash report printed its state: the TLS private key.
  test "TLS clients that close right after the handshake crash nothing and log nothing" do
    tls = H2Flow.TLS.self_signed()
    {server, port} = start_server!(fn req -> Req.reply(200, req) end, transport: :tls, tls: tls)
    key = tls |> Keyword.fetch!(:key) |> elem(1) |> binary_part(0, 12)

    log =
      capture_log([level: :debug], fn ->
        for i <- 1..300 do
          opts = [:binary, active: false, alpn_advertised_protocols: ["h2"], verify: :verify_none]

          case :ssl.connect(~c"127.0.0.1", port, opts, 5_000) do
            {:ok, sock} ->
              if rem(i, 2) == 0, do: :ssl.send(sock, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
              :ssl.close(sock)

            {:error, _} ->
              :ok
          end
        end

        eventually(fn -> connections(server) == [] end, 10_000)
      end)

    # (The log is the whole VM's: other tests' handlers may crash meanwhile, on purpose.)
    refute log =~ "terminating", "a connection process crashed"
    refute log =~ "H2Flow.Connection"
    refute log =~ inspect(key) |> String.trim_leading("<<") |> String.trim_trailing(">>")
    # The server still serves.
    conn = connect!(port, [], tls: true)
    {:ok, conn, id} = H2Client.request(conn, "GET", "/")
    assert {:ok, _, %{status: 200}} = H2Client.read_response(conn, id)
  end

  describe "an invalid connection preface (RFC 9113 3.4)" do
    for transport <- [:tcp, :tls] do
      test "over #{transport} is GOAWAY PROTOCOL_ERROR, not an HTTP/1.1 answer" do
        opts =
          if unquote(transport) == :tls,
            do: [transport: :tls, tls: H2Flow.TLS.self_signed()],
            else: []

        {_server, port} = start_server!(fn req -> Req.reply(200, req) end, opts)
        {:ok, conn} = H2Client.connect("127.0.0.1", port, tls: unquote(transport) == :tls)
        :ok = H2Client.send_raw(conn, "INVALID CONNECTION PREFACE\r\n\r\n")
        frames = read_to_close(conn)
        assert [{:settings, false, _} | _] = frames
        assert {:goaway, 0, :protocol_error, _} = List.keyfind(frames, :goaway, 0)
      end
    end

    test "a real HTTP/1.1 request line on h2c still gets a plain-text answer without HTTP/1.1" do
      {_server, port} = start_server!(fn req -> Req.reply(200, req) end, http_versions: [:http2])
      {:ok, sock} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
      :ok = :gen_tcp.send(sock, "GET / HTTP/1.1\r\nhost: x\r\n\r\n")
      assert {:ok, "HTTP/1.1 505" <> _} = :gen_tcp.recv(sock, 0, 5_000)
    end
  end

  test "a stream the peer lets nothing go on is reset; its handler's stream_body says so" do
    chunk = :binary.copy("s", 16 * @kib)
    test = self()

    {server, port} =
      start_server!(
        fn req ->
          req = Req.stream_reply(200, req)
          send(test, {:stream_body, Req.stream_id(req), stream_forever(req, chunk)})
          req
        end,
        send_stall_timeout: 1_000
      )

    conn = connect!(port, initial_window_size: 0)
    {:ok, conn, 1} = H2Client.request(conn, "GET", "/stalled")
    {:ok, conn, 3} = H2Client.request(conn, "GET", "/flowing")

    # Stream 3 gets window now and then, so the connection keeps sending; stream 1 never.
    conn =
      Enum.reduce(1..30, conn, fn _, conn ->
        :ok = H2Client.send_window_update(conn, 0, 16 * @kib)
        :ok = H2Client.send_window_update(conn, 3, 16 * @kib)
        Process.sleep(100)
        conn
      end)

    assert_receive {:stream_body, 1, {:error, :timeout}}, 5_000
    assert {:ok, _, _} = H2Client.recv_until(conn, &match?({:rst_stream, 1, :cancel}, &1))
    refute_received {:stream_body, 3, _}
    assert stat(server, :send_timeouts) == 1
  end

  defp stream_forever(req, chunk) do
    case Req.stream_body(chunk, :nofin, req) do
      :ok -> stream_forever(req, chunk)
      error -> error
    end
  end

  # A gRPC stream sending a few bytes a second got about 94 probe PINGs a second.
  @tag timeout: 60_000
  test "a 5-second trickle upload gets no probe PINGs; a fast one still grows the windows" do
    {server, port} = start_server!(echo_size())
    conn = connect!(port)
    post(conn, 1, nil)

    for _ <- 1..50 do
      :ok = H2Client.send_data(conn, 1, :binary.copy("t", 2_000), false)
      Process.sleep(100)
    end

    :ok = H2Client.send_data(conn, 1, "", true)
    assert {:ok, conn, %{status: 200, body: "100000"}} = H2Client.read_response(conn, 1, 10_000)
    pings = stat(server, :pings_sent)
    IO.puts("5-second trickle upload of 100 kB: #{pings} PINGs sent")
    assert pings == 0

    H2Client.close(conn)

    # 32 MiB as fast as the windows allow (python-hyper's h2 keeps to them): probes go out,
    # within their rate, and the windows grow.
    started = System.monotonic_time(:millisecond)
    result = python!("upload", port, [32 * @mib, "/"])
    seconds = (System.monotonic_time(:millisecond) - started) / 1000
    assert %{sent: 33_554_432, responses: %{1 => %{status: 200}}} = result
    stats = H2Flow.stats(server)

    IO.puts(
      "32 MiB upload in #{seconds} s: #{stats.pings_sent} PINGs, windows grew #{stats.connection_window_growths} + #{stats.stream_window_growths} times"
    )

    assert stats.pings_sent > 0
    assert stats.connection_window_growths + stats.stream_window_growths > 0
    assert stats.pings_sent <= 8 + 2 * (seconds + 1)
  end

  test "a connection closed before it was spoken to counts no frame sent" do
    {server, port} = start_server!(fn req -> Req.reply(200, req) end)
    {:ok, sock} = :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false])
    :ok = :gen_tcp.close(sock)
    eventually(fn -> stat(server, :connections_closed) == 1 end)
    stats = H2Flow.stats(server)
    assert stats.frames_sent.settings == 0
    assert stats.frames_sent.window_update == 0
    assert stats.window_update_frames == %{connection: 0, stream: 0}
  end

  test ":protocol makes a request malformed without SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 4)" do
    {_server, port} = start_server!(fn req -> Req.reply(200, req) end)
    conn = connect!(port)

    :ok =
      H2Client.send_headers(
        conn,
        1,
        [
          {":method", "CONNECT"},
          {":protocol", "websocket"},
          {":scheme", "http"},
          {":authority", "localhost"},
          {":path", "/chat"}
        ],
        false
      )

    assert {:ok, _, _} = H2Client.recv_until(conn, &match?({:rst_stream, 1, :protocol_error}, &1))
  end

  test "431 answers count toward the reset-flood defence (CVE-2019-9514)" do
    {server, port} = start_server!(fn req -> Req.reply(200, req) end, max_header_list_size: 1_000)

    conn = connect!(port)
    big = [{"x-big", :binary.copy("b", 2_000)}]

    conn =
      Enum.reduce(1..300, conn, fn _, conn ->
        {:ok, conn, _} = H2Client.request(conn, "GET", "/", big)
        conn
      end)

    frames = read_to_close(conn)
    statuses = for {:headers, _, [{":status", s} | _], _} <- frames, do: s
    assert length(statuses) >= 200 and length(statuses) < 300
    assert Enum.all?(statuses, &(&1 == "431"))
    assert {:goaway, _, :enhance_your_calm, _} = List.keyfind(frames, :goaway, 0)
    assert stat(server, :defences).reset_flood == 1
  end

  # A body that arrived whole and that the handler never read must still be credited when the
  # handler is done, or the connection window runs out after 1 MiB of such requests.
  test "handlers that ignore bodies which arrived whole do not exhaust the connection window" do
    {server, port} = start_server!(fn req -> Req.reply(200, %{}, "ignored", req) end)
    conn = connect!(port)
    body = :binary.copy("i", 60 * @kib)

    conn =
      Enum.reduce(1..50, conn, fn _, conn ->
        {:ok, conn, id} = H2Client.request(conn, "POST", "/", [], body)
        assert {:ok, conn, %{status: 200}} = H2Client.read_response(conn, id, 10_000)
        conn
      end)

    H2Client.close(conn)
    assert stat(server, :data_bytes_received) == 50 * 60 * @kib
  end
end
