defmodule H2Flow.AttacksTest do
  # Denial-of-service attacks over real sockets, one test per attack. Each asserts the exact
  # answer on the wire, the counter of the defence that answered, that the server's memory
  # stayed far below what the attack would cost without the defence, and that other clients
  # are still served. Not async: memory is measured for the whole VM and OS process.
  use ExUnit.Case, async: false

  import Bitwise
  import ExUnit.CaptureLog
  import H2Flow.Test.AttackHelpers
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client
  alias H2Flow.Test.H2Client.HPACK

  @kib 1024
  @mib 1024 * 1024

  # "/": 200 "ok". "/hold": waits for :release (or its stream's end). "/big": streams
  # 128 × 64 KiB = 8 MiB. "/forever": streams 16 KiB pieces until the stream is gone.
  defp handler(test) do
    fn req ->
      case Req.path(req) do
        "/" ->
          Req.reply(200, %{}, "ok", req)

        "/hold" ->
          send(test, {:holding, self(), Req.stream_id(req)})
          receive(do: (:release -> Req.reply(200, %{}, "released", req)))

        "/hold-quiet" ->
          receive(do: (:release -> Req.reply(200, %{}, "released", req)))

        "/big" ->
          req = Req.stream_reply(200, req)
          chunk = :binary.copy("b", 64 * @kib)
          send(test, {:streaming, self(), Req.stream_id(req)})
          for _ <- 1..128, do: :ok = Req.stream_body(chunk, :nofin, req)
          :ok = Req.stream_body("", :fin, req)
          req

        "/forever" ->
          req = Req.stream_reply(200, req)
          stream_forever(req, :binary.copy("f", 16 * @kib))
      end
    end
  end

  defp stream_forever(req, chunk) do
    case Req.stream_body(chunk, :nofin, req) do
      :ok -> stream_forever(req, chunk)
      {:error, :closed} -> req
    end
  end

  defp start!(opts \\ []), do: start_server!(handler(self()), opts)

  defp print(name, mem, extra \\ "") do
    IO.puts(
      "\n#{name}: VM memory #{fmt(mem.total)}, binaries #{fmt(mem.binary)}, RSS #{fmt(mem.rss)} " <>
        "(peak #{fmt(mem.peak_rss)})#{extra}"
    )
  end

  defp fmt(bytes), do: "#{Float.round(bytes / @mib, 2)} MiB"

  # --- 1. Rapid Reset -----------------------------------------------------------------------

  # Once the reset budget is spent: GOAWAY ENHANCE_YOUR_CALM.
  test "rapid reset (CVE-2023-44487): 10,000 HEADERS + RST_STREAM pairs at full speed" do
    {server, port} = start!()
    bystander = connect!(port)
    attacker = connect!(port)

    # Built before the measurement, as one binary: what the client side costs stays small.
    flood =
      IO.iodata_to_binary(
        for i <- 0..9_999 do
          id = 2 * i + 1
          [headers_frame(id, request_fields("GET", "/hold-quiet")), rst_frame(id)]
        end
      )

    {{frames, bystander}, mem} =
      measure(fn ->
        :ok = send_flood(attacker, flood)
        # Served while the flood is being processed.
        bystander = assert_get(bystander)
        {read_to_close(attacker), bystander}
      end)

    # Nothing but the acknowledgement of our SETTINGS came before it: no response, no RST.
    assert [{:goaway, last, :enhance_your_calm, "too many stream resets (CVE-2023-44487)"}] =
             without_preface(frames)

    stats = H2Flow.stats(server)
    assert stats.defences == defences(rapid_reset: 1)
    assert stats.connection_errors == errors(enhance_your_calm: 1)
    # The burst (1,000) and what trickled back in while it was processed; the rest of the
    # 10,000 were never looked at.
    assert stats.streams_reset_by_peer in 1_000..5_000
    assert last in 2_001..19_999//2
    assert stats.streams_opened - 1 == div(last + 1, 2)
    assert stats.handler_crashes == 0
    # Every handler of the attack is gone (killed with its stream).
    eventually(fn -> handler_processes() == [] end)

    print("rapid reset", mem, ", #{stats.streams_reset_by_peer} resets accepted")
    assert_bounded(mem, 16 * @mib)
    assert_get(bystander)
    assert_served(port)
  end

  # --- 2. CONTINUATION flood ----------------------------------------------------------------

  # Endless CONTINUATION frames, and one huge header block in many small or large frames:
  # GOAWAY ENHANCE_YOUR_CALM.
  test "CONTINUATION flood (CVE-2024-27316)" do
    {server, port} = start!()
    bystander = connect!(port)
    # 1 MiB of valid fields: 256 × 4,000-byte values.
    huge =
      H2Client.encode_literal_block(
        request_fields("GET", "/") ++
          for(i <- 1..256, do: {"x-pad-#{i}", :binary.copy("p", 4_000)})
      )

    attacks =
      for {name, [first | rest]} <- [
            # HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
            {"endless", [<<0x82>> | List.duplicate(<<0x84>>, 100_000)]},
            # The huge block in 1 KiB frames: the frame count trips first (17th frame).
            {"1 KiB frames", chunks(huge, @kib)},
            # The huge block in 16 KiB frames: the byte count trips first (past 64 KiB).
            {"16 KiB frames", chunks(huge, 16 * @kib)}
          ] do
        flood = [
          H2Client.encode_frame(:headers, 0x1, 1, first)
          | Enum.map(rest, &H2Client.encode_frame(:continuation, 0, 1, &1))
        ]

        {name, IO.iodata_to_binary(flood)}
      end

    {bystander, mem} =
      measure(fn ->
        Enum.reduce(attacks, bystander, fn {name, flood}, bystander ->
          conn = connect!(port)
          :ok = send_flood(conn, flood)
          frames = read_to_close(conn)

          assert without_preface(frames) == [
                   {:goaway, 0, :enhance_your_calm,
                    "header block with too many CONTINUATION frames or bytes (CVE-2024-27316)"}
                 ],
                 name

          assert_get(bystander)
        end)
      end)

    stats = H2Flow.stats(server)
    assert stats.defences == defences(continuation_flood: 3)
    assert stats.connection_errors == errors(enhance_your_calm: 3)
    assert stats.streams_opened == 3
    print("CONTINUATION flood", mem)
    # 2.5 MiB sent by the three attackers; the server keeps at most one 64 KiB block.
    assert_bounded(mem, 16 * @mib)
    assert_get(bystander)
    assert_served(port)
  end

  defp chunks(bin, size) when byte_size(bin) <= size, do: [bin]

  defp chunks(bin, size) do
    <<chunk::binary-size(size), rest::binary>> = bin
    [chunk | chunks(rest, size)]
  end

  # --- 3. PING and SETTINGS floods ----------------------------------------------------------

  describe "PING and SETTINGS floods (CVE-2019-9512, 9515), the client not reading" do
    # GOAWAY ENHANCE_YOUR_CALM; the acknowledgements queued are bounded.
    test "PINGs, empty SETTINGS, a SETTINGS frame of 33 parameters" do
      {server, port} = start!()
      bystander = connect!(port)
      ping = ping_frame()
      settings = H2Client.encode_frame(:settings, 0, 0, "")
      params = for i <- 1..33, do: <<0x10 + i::16, 0::32>>

      attacks = [
        # 200,000 PINGs (3.4 MB), written before a single byte is read.
        {:ping, :binary.copy(IO.iodata_to_binary(ping), 200_000)},
        {:settings, :binary.copy(IO.iodata_to_binary(settings), 200_000)},
        {:settings_params, H2Client.encode_frame(:settings, 0, 0, params)}
      ]

      {bystander, mem} =
        measure(fn ->
          Enum.reduce(attacks, bystander, fn {kind, flood}, bystander ->
            # A 4 KiB receive buffer: the client's side fills up after a few hundred ACKs.
            conn = connect!(port, [], socket_opts: [recbuf: 4 * @kib, send_timeout: 5_000])
            :ok = send_flood(conn, flood)
            frames = read_to_close(conn)
            acks = Enum.count(frames, &match?({tag, true, _} when tag in [:ping, :settings], &1))

            {:goaway, 0, :enhance_your_calm, debug} = goaway!(frames)

            case kind do
              :settings_params ->
                assert debug == "too many parameters in one SETTINGS frame (CVE-2019-9515)"
                assert acks == 1

              _ ->
                assert debug ==
                         "too many PING or SETTINGS frames to acknowledge (CVE-2019-9512)"

                # At most 1,000 acknowledgements per flush, and the flood is cut short: most of
                # the 200,000 frames were never acknowledged.
                assert acks in 1_000..20_000, "#{kind}: #{acks} acknowledgements"
            end

            assert_get(bystander)
          end)
        end)

      stats = H2Flow.stats(server)
      assert stats.defences == defences(ack_flood: 2, settings_flood: 1)
      assert stats.connection_errors == errors(enhance_your_calm: 3)
      print("PING/SETTINGS floods", mem)
      assert_bounded(mem, 16 * @mib)
      assert_get(bystander)
      assert_served(port)
    end

    # With the acknowledgement limit out of the way, the socket bounds what is queued: the
    # connection process blocks in its write and is closed by :write_timeout.
    test "PINGs, no acknowledgement limit: the write blocks, then times out" do
      {server, port} = start!(max_queued_acks: 1_000_000_000, write_timeout: 300)
      bystander = connect!(port)
      others = eventually(fn -> match?([_], connections(server)) && connections(server) end)
      conn = connect!(port, [], socket_opts: [recbuf: 4 * @kib, send_timeout: 2_000])

      [connection] =
        eventually(fn ->
          match?([_], connections(server) -- others) && connections(server) -- others
        end)

      ref = monitor!(connection)
      chunk = :binary.copy(IO.iodata_to_binary(ping_frame()), 1_000)

      {queued, mem} =
        measure(fn ->
          flooder =
            Task.async(fn ->
              Enum.reduce_while(1..2_000, 0, fn _, n ->
                case H2Client.send_raw(conn, chunk) do
                  :ok -> {:cont, n + 1}
                  {:error, _} -> {:halt, n}
                end
              end)
            end)

          # Blocked in gen_tcp:send on a full socket (waiting for the driver's reply, which
          # comes once the queue drains or :write_timeout passes), it reads nothing more.
          eventually(fn ->
            Process.info(connection, :current_function) ==
              {:current_function, {:prim_inet, :send_recv_reply, 2}}
          end)

          queued = port_queue(connection)
          assert_receive {:DOWN, ^ref, :process, ^connection, {:shutdown, :closed}}, 5_000
          sent = Task.await(flooder, 10_000)
          assert sent < 2_000
          queued
        end)

      stats = H2Flow.stats(server)
      assert stats.write_timeouts == 1
      assert stats.defences == defences()
      print("PING flood, limit off", mem, ", #{queued} bytes queued in the socket's port")
      # At most two flushes' worth: the write blocked now and what is left of the one before
      # it, each acknowledging at most one batch of reads (the connection flushes once 1 MiB
      # was read, and a read is at most :read_buffer, 256 KiB); the flooder tried to send
      # 34 MB.
      assert queued <= 2 * 64 * 64 * @kib
      assert_bounded(mem, 32 * @mib)
      assert_get(bystander)
      assert_served(port)
    end
  end

  # Bytes waiting in the driver queue of the socket a process owns.
  defp port_queue(pid) do
    [port] = for p <- Port.list(), Port.info(p, :connected) == {:connected, pid}, do: p
    {:queue_size, bytes} = :erlang.port_info(port, :queue_size)
    bytes
  end

  # --- 4. Reset flood -----------------------------------------------------------------------

  # RST_STREAM PROTOCOL_ERROR until the budget is spent, then GOAWAY ENHANCE_YOUR_CALM.
  test "reset flood (CVE-2019-9514): 2,000 malformed requests" do
    {server, port} = start!()
    bystander = connect!(port)
    attacker = connect!(port)
    # An uppercase field name makes a request malformed (RFC 9113 8.2.1).
    bad = request_fields("GET", "/", [{"X-Bad", "1"}])
    flood = IO.iodata_to_binary(for i <- 0..1_999, do: headers_frame(2 * i + 1, bad))

    {frames, mem} =
      measure(fn ->
        :ok = send_flood(attacker, flood)
        read_to_close(attacker)
      end)

    {:goaway, last, :enhance_your_calm, "too many stream errors (CVE-2019-9514)"} =
      goaway!(frames)

    resets = for {:rst_stream, id, code} <- frames, do: {id, code}
    # One RST_STREAM PROTOCOL_ERROR per request, in order, up to the budget (200, plus what
    # refilled meanwhile); the request that exceeded it got the GOAWAY instead.
    n = length(resets)
    assert n in 200..1_000
    assert resets == for(i <- 0..(n - 1), do: {2 * i + 1, :protocol_error})
    assert last == 2 * n + 1

    stats = H2Flow.stats(server)
    assert stats.defences == defences(reset_flood: 1)
    assert stats.stream_errors == errors(protocol_error: n)
    assert stats.connection_errors == errors(enhance_your_calm: 1)
    assert stats.handlers_started == 0
    print("reset flood", mem, ", #{n} resets sent")
    assert_bounded(mem, 16 * @mib)
    assert_get(bystander)
    assert_served(port)
  end

  # --- 5. Empty header names, empty frames ---------------------------------------------------

  # The request is malformed (RST_STREAM PROTOCOL_ERROR); a block of 5,000 of them is too
  # large (431); the connection lives on.
  test "0-length header names (CVE-2019-9516)" do
    {server, port} = start!()
    conn = connect!(port)
    # 5,000 empty fields, each stored in the dynamic table (literal with incremental
    # indexing, empty name and value: 2 bytes each, 32 octets of list size each).
    empties = :binary.copy(<<0x40, 0, 0>>, 5_000)
    literal = H2Client.encode_literal_block(request_fields())

    {conn, mem} =
      measure(fn ->
        :ok = H2Client.send_headers(conn, 1, request_fields("GET", "/", [{"", "x"}]), true)
        {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:rst_stream, 1, _}, &1))
        assert without_preface(frames) == [{:rst_stream, 1, :protocol_error}]

        :ok = H2Client.send_headers_block(conn, 3, [literal, empties], true)
        {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:headers, 3, _, _}, &1))
        assert [{:headers, 3, [{":status", "431"}], true}] = without_preface(frames)
        %{conn | next_stream_id: 5}
      end)

    conn = assert_get(conn)
    stats = H2Flow.stats(server)
    assert stats.stream_errors == errors(protocol_error: 1)
    assert stats.defences == defences(header_list_too_large: 1)
    assert stats.connection_errors == errors()
    assert stats.streams_opened == 1
    print("empty header names", mem)
    assert_bounded(mem, 16 * @mib)
    H2Client.close(conn)
    assert_served(port)
  end

  test "empty DATA frames flood (CVE-2019-9518): GOAWAY ENHANCE_YOUR_CALM" do
    {server, port} = start!()
    bystander = connect!(port)
    attacker = connect!(port)
    empty = data_frame(1, "")

    flood =
      IO.iodata_to_binary([
        headers_frame(1, request_fields("POST", "/hold-quiet"), false)
        | List.duplicate(empty, 100_000)
      ])

    {frames, mem} =
      measure(fn ->
        :ok = send_flood(attacker, flood)
        read_to_close(attacker)
      end)

    assert without_preface(frames) == [
             {:goaway, 1, :enhance_your_calm, "too many empty DATA frames (CVE-2019-9518)"}
           ]

    stats = H2Flow.stats(server)
    assert stats.defences == defences(empty_frames: 1)
    assert stats.connection_errors == errors(enhance_your_calm: 1)
    # The burst of 100 and what refilled (10 a second) while they were read.
    assert stats.frames_received.data in 101..200
    print("empty DATA frames", mem)
    assert_bounded(mem, 16 * @mib)
    assert_get(bystander)
    assert_served(port)
  end

  # --- 6. Data dribble / internal buffering -------------------------------------------------

  # Stream windows of 1 byte and no WINDOW_UPDATE: handlers block, the send queue stays
  # bounded, and no trickle of tiny frames goes out.
  test "data dribble and internal buffering (CVE-2019-9511, 9517)" do
    {server, port} = start!()
    conn = connect!(port, initial_window_size: 1)
    connection = connection!(server)
    before = process_memory(connection)
    n = 10

    {conn, mem} =
      measure(fn ->
        conn =
          Enum.reduce(1..n, conn, fn _, conn ->
            {:ok, conn, _} = H2Client.request(conn, "GET", "/big")
            conn
          end)

        handlers =
          for _ <- 1..n do
            assert_receive {:streaming, pid, _}, 5_000
            pid
          end

        # Each handler is blocked in stream_body: the engine holds max_send_queue (64 KiB) of
        # its response, the rest waits in the handler's own binary.
        queue = 64 * @kib
        eventually(fn -> H2Flow.stats(server).queued_send_bytes == n * queue end)

        for pid <- handlers do
          assert Process.info(pid, :current_function) == {:current_function, {Req, :call, 2}}
        end

        # One byte per stream and nothing more: no trickle of tiny frames.
        {conn, frames} = sync!(conn)
        data = for {:data, id, bytes, _} <- frames, do: {id, bytes}
        assert Enum.sort(data) == for(id <- 1..(2 * n - 1)//2, do: {id, "b"})

        assert Enum.count(frames, &match?({:headers, _, [{":status", "200"} | _], false}, &1)) ==
                 n

        conn
      end)

    stats = H2Flow.stats(server)
    assert stats.peak_queued_send_bytes == n * 64 * @kib
    assert stats.stream_stalls == n
    assert stats.data_bytes_sent == n
    assert stats.defences == defences()
    after_ = process_memory(connection)

    print(
      "data dribble",
      mem,
      ", #{n} × 8 MiB asked, #{stats.peak_queued_send_bytes} bytes queued at the peak, " <>
        "connection process #{before} → #{after_} bytes"
    )

    # 80 MiB asked for; what is queued is 64 KiB per stream.
    assert_bounded(mem, 16 * @mib)
    # It refers to the handlers' 64 KiB pieces (one per handler, shared), nothing more.
    assert after_ < before + n * 64 * @kib + 256 * @kib

    # Cancelling the streams releases the queued bytes; the connection carries on.
    for id <- 1..(2 * n - 1)//2, do: :ok = H2Client.send_rst_stream(conn, id, :cancel)
    eventually(fn -> H2Flow.stats(server).queued_send_bytes == 0 end)
    eventually(fn -> handler_processes() == [] end)
    :ok = H2Client.send_settings(conn, initial_window_size: 65_535)
    conn = assert_get(conn)
    H2Client.close(conn)
  end

  # --- 7. HPACK bomb ------------------------------------------------------------------------

  # A 4 KiB table entry referenced 16,000 times (64 MB decoded) is answered 431 while
  # decoding, without building the list.
  test "HPACK bomb (CVE-2016-6581)" do
    {server, port} = start!()
    conn = connect!(port)
    value = :binary.copy("v", 4_000)
    # A literal with incremental indexing, new name: "x-bomb" enters the dynamic table (4,038
    # octets of its 4,096).
    entry = [<<0x40, 6>>, "x-bomb", HPACK.encode_int(4_000, 7, 0), value]
    literal = H2Client.encode_literal_block(request_fields())

    {conn, mem} =
      measure(fn ->
        :ok = H2Client.send_headers_block(conn, 1, [literal, entry], true)
        assert {:ok, conn, %{status: 200}} = H2Client.read_response(conn, 1)
        # Index 62 is the newest dynamic entry: one byte for 4,038 octets.
        bomb = [literal, :binary.copy(<<0x80 ||| 62>>, 16_000)]
        :ok = H2Client.send_headers_block(conn, 3, bomb, true)
        {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:headers, 3, _, _}, &1))
        assert [{:headers, 3, [{":status", "431"}], true}] = without_preface(frames)
        %{conn | next_stream_id: 5}
      end)

    # The decoder stayed in step with ours: the table still holds the entry.
    :ok = H2Client.send_headers_block(conn, 5, [literal, <<0x80 ||| 62>>], true)
    assert {:ok, conn, %{status: 200, body: "ok"}} = H2Client.read_response(conn, 5)
    conn = %{conn | next_stream_id: 7}
    conn = assert_get(conn)
    stats = H2Flow.stats(server)
    assert stats.defences == defences(header_list_too_large: 1)
    assert stats.connection_errors == errors()
    print("HPACK bomb", mem)
    assert_bounded(mem, 16 * @mib)
    H2Client.close(conn)
    assert_served(port)
  end

  # --- 8. WINDOW_UPDATE of 0 and past 2^31-1 ---------------------------------------------------

  # On a stream RST_STREAM PROTOCOL_ERROR / FLOW_CONTROL_ERROR, on the connection GOAWAY
  # with the same codes.
  test "WINDOW_UPDATE of 0 and past 2^31-1 (RFC 9113 6.9, 6.9.1)" do
    {server, port} = start!()
    max = 0x7FFF_FFFF

    {_, mem} =
      measure(fn ->
        for {increment, code} <- [{0, :protocol_error}, {max, :flow_control_error}] do
          # On a stream: a stream error; the connection goes on.
          conn = connect!(port)
          {:ok, conn, id} = H2Client.request(conn, "GET", "/hold")
          assert_receive {:holding, pid, ^id}, 5_000
          ref = monitor!(pid)
          :ok = H2Client.send_window_update(conn, id, increment)
          {:ok, conn, frames} = H2Client.recv_until(conn, &match?({:rst_stream, _, _}, &1))
          assert without_preface(frames) == [{:rst_stream, id, code}]
          # Killed by the connection (a DOWN :noproc says it was already gone when the monitor
          # arrived: it waits for :release and exits no other way).
          assert_receive {:DOWN, ^ref, :process, ^pid, reason} when reason in [:killed, :noproc],
                         5_000

          conn = assert_get(conn)
          H2Client.close(conn)

          # On the connection: a connection error.
          conn = connect!(port)
          :ok = H2Client.send_window_update(conn, 0, increment)
          frames = read_to_close(conn)
          assert {:goaway, 0, ^code, _} = goaway!(frames)
          assert length(without_preface(frames)) == 1
        end
      end)

    stats = H2Flow.stats(server)
    assert stats.stream_errors == errors(protocol_error: 1, flow_control_error: 1)
    assert stats.connection_errors == errors(protocol_error: 1, flow_control_error: 1)
    assert stats.defences == defences()
    assert_bounded(mem, 16 * @mib)
    assert_served(port)
  end

  # --- 9. Streams over the limit, slow clients, broken framing ------------------------------

  describe "connection abuse" do
    # The excess is refused (REFUSED_STREAM), the accepted ones are served, the connection
    # kept.
    test "more streams than allowed" do
      {server, port} = start!(max_concurrent_streams: 10)
      conn = connect!(port)
      connection = connection!(server)
      before = process_memory(connection)

      {conn, mem} =
        measure(fn ->
          conn =
            Enum.reduce(1..15, conn, fn _, conn ->
              {:ok, conn, _id} = H2Client.request(conn, "GET", "/hold")
              conn
            end)

          held =
            for _ <- 1..10 do
              assert_receive {:holding, pid, _}, 5_000
              pid
            end

          {conn, frames} = sync!(conn)

          assert without_preface(frames) |> Enum.reject(&match?({:ping, _, _}, &1)) ==
                   for(id <- 21..29//2, do: {:rst_stream, id, :refused_stream})

          for pid <- held, do: send(pid, :release)

          Enum.reduce(1..19//2, conn, fn id, conn ->
            assert {:ok, conn, %{status: 200, body: "released"}} =
                     H2Client.read_response(conn, id)

            conn
          end)
        end)

      conn = assert_get(conn)
      stats = H2Flow.stats(server)
      assert stats.streams_refused == 5
      assert stats.defences == defences()
      assert stats.connection_errors == errors()
      assert_bounded(mem, 16 * @mib)
      assert process_memory(connection) < before + 256 * @kib
      H2Client.close(conn)
    end

    test "slowloris: a preface sent a byte at a time is cut off by :preface_timeout" do
      # A byte per 100 ms needs 2.4 s for the preface. Until the bytes tell the HTTP/2
      # preface from an HTTP/1.x request line ("PRI * HTTP/2.0" is one, syntactically), the
      # protocol is not known: the client gets no frames, only the close.
      {server, port} = start!(preface_timeout: 1_000)
      {:ok, conn} = H2Client.connect("127.0.0.1", port)
      preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

      {sent, mem} = measure(fn -> dribble(conn, preface, 0) end)

      # Closed before the 24 bytes were in.
      assert sent < byte_size(preface)
      stats = H2Flow.stats(server)
      assert stats.preface_timeouts == 1
      assert stats.connection_errors == errors()
      assert_bounded(mem, 16 * @mib)
      assert_served(port)
    end

    test "slowloris: a header block that never ends is cut off by :idle_timeout" do
      {server, port} = start!(idle_timeout: 200)
      conn = connect!(port)
      block = H2Client.encode_literal_block(request_fields())
      # Half a header block, no END_HEADERS, then silence.
      :ok =
        H2Client.send_headers_block(conn, 1, binary_part(block, 0, 10), true, end_headers: false)

      {frames, mem} = measure(fn -> read_to_close(conn) end)
      assert without_preface(frames) == [{:goaway, 0, :no_error, "idle"}]
      stats = H2Flow.stats(server)
      assert stats.idle_timeouts == 1
      assert stats.streams_opened == 0
      assert_bounded(mem, 16 * @mib)
      assert_served(port)
    end

    # GOAWAY PROTOCOL_ERROR, FRAME_SIZE_ERROR, PROTOCOL_ERROR.
    test "a bad preface, an oversized frame, stream ids going backwards" do
      {server, port} = start!()

      {_, mem} =
        measure(fn ->
          {:ok, conn} = H2Client.connect("127.0.0.1", port)
          :ok = H2Client.send_raw(conn, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
          frames = read_to_close(conn)

          assert without_preface(frames) == [
                   {:goaway, 0, :protocol_error, "invalid connection preface (RFC 9113 3.4)"}
                 ]

          # A DATA frame one byte over SETTINGS_MAX_FRAME_SIZE (16,384).
          conn = connect!(port)
          {:ok, conn, id} = open_post(conn, "/hold-quiet")
          :ok = H2Client.send_data(conn, id, :binary.copy("x", 16_385), false)
          frames = read_to_close(conn)

          assert without_preface(frames) == [
                   {:goaway, 1, :frame_size_error,
                    "frame exceeds SETTINGS_MAX_FRAME_SIZE (RFC 9113 4.2)"}
                 ]

          conn = connect!(port)
          :ok = H2Client.send_headers(conn, 5, request_fields(), true)
          assert {:ok, conn, %{status: 200}} = H2Client.read_response(conn, 5)
          :ok = H2Client.send_headers(conn, 3, request_fields(), true)
          frames = read_to_close(conn)

          assert without_preface(frames) == [
                   {:goaway, 5, :protocol_error,
                    "new stream identifier not greater than all previous ones (RFC 9113 5.1.1)"}
                 ]
        end)

      stats = H2Flow.stats(server)
      assert stats.connection_errors == errors(protocol_error: 2, frame_size_error: 1)
      assert stats.defences == defences()
      assert_bounded(mem, 16 * @mib)
      assert_served(port)
    end
  end

  # Writes one byte, then waits up to 100 ms for the server to close; returns the bytes written
  # when the close came. Frames the server writes meanwhile are checked at the end.
  defp dribble(conn, preface, sent) do
    case H2Client.recv(conn, 100) do
      {:error, conn, :timeout} when sent < byte_size(preface) ->
        :ok = H2Client.send_raw(conn, binary_part(preface, sent, 1))
        dribble(conn, preface, sent + 1)

      {:ok, conn, frame} ->
        send(self(), {:dribble_frame, frame})
        dribble(conn, preface, sent)

      {:error, _conn, :closed} ->
        assert collect_dribbled([]) == []
        sent
    end
  end

  defp collect_dribbled(acc) do
    receive do
      {:dribble_frame, frame} -> collect_dribbled([frame | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp open_post(conn, path) do
    id = conn.next_stream_id
    :ok = H2Client.send_headers(conn, id, request_fields("POST", path), false)
    {:ok, %{conn | next_stream_id: id + 2}, id}
  end

  # --- 10. The Node.js race -----------------------------------------------------------------

  # No crash, no leaked process, nothing logged at :warning or above.
  test "the Node.js race: connections dropped and streams reset while handlers write" do
    {server, port} = start!()
    # Warm up: the first client of the VM starts services that stay.
    assert_served(port)
    eventually(fn -> connections(server) == [] end)
    baseline = :erlang.system_info(:process_count)
    acceptors = H2Flow.Server.child(server, H2Flow.Server.Acceptors)

    request =
      IO.iodata_to_binary([
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        H2Client.encode_frame(:settings, 0, 0, ""),
        headers_frame(1, request_fields("GET", "/forever"))
      ])

    {_, log} =
      with_log([level: :warning], fn ->
        {_, mem} =
          measure(fn ->
            # 1,000 connections, 8 at a time: each waits for response DATA, then resets the
            # TCP connection (linger 0) while its handler is writing.
            1..1_000
            |> Task.async_stream(fn _ -> drop_mid_response(port, request) end,
              max_concurrency: 8,
              timeout: 10_000
            )
            |> Enum.each(fn {:ok, :dropped} -> :ok end)

            # Streams reset by the client while their handlers write, 50 per connection.
            for _ <- 1..5 do
              conn = connect!(port)

              conn =
                Enum.reduce(1..50, conn, fn _, conn ->
                  {:ok, conn, _} = H2Client.request(conn, "GET", "/forever")
                  conn
                end)

              {:ok, conn, _} = H2Client.recv_until(conn, &match?({:data, _, _, _}, &1))
              for id <- 1..99//2, do: :ok = H2Client.send_rst_stream(conn, id, :cancel)
              :ok = H2Client.send_window_update(conn, 0, 16 * @mib)
              conn = assert_get(conn)
              H2Client.close(conn)
            end

            eventually(fn -> connections(server) == [] end, 10_000)
          end)

        print("connect/drop flood", mem)
        assert_bounded(mem, 32 * @mib)
      end)

    assert log == ""
    # The server, its listener and its acceptors are the same processes as before.
    assert Process.alive?(server)
    assert H2Flow.Server.child(server, H2Flow.Server.Acceptors) == acceptors
    assert_served(port)
    eventually(fn -> connections(server) == [] end)
    eventually(fn -> handler_processes() == [] end)
    eventually(fn -> :erlang.system_info(:process_count) <= baseline end, 10_000)

    stats = H2Flow.stats(server)
    assert stats.handler_crashes == 0
    assert stats.connections_closed == 1_000 + 5 + 2
    assert stats.handlers_started == 1_000 + 5 * 51 + 2
    # Every handler of a dropped connection or reset stream was stopped, none crashed.
    assert stats.handlers_stopped == 1_000 + 5 * 50
    assert stats.connection_errors == errors()
    assert stats.defences == defences()

    IO.puts(
      "connect/drop flood: #{stats.writes_to_closed_streams} writes to streams already gone " <>
        "(counted, not crashed)"
    )
  end

  defp drop_mid_response(port, request) do
    {:ok, sock} =
      :gen_tcp.connect(~c"127.0.0.1", port, [:binary, active: false, linger: {true, 0}])

    :ok = :gen_tcp.send(sock, request)
    :ok = await_data(sock, "")
    :ok = :gen_tcp.close(sock)
    :dropped
  end

  # Reads until a DATA frame (type 0) of stream 1 arrives.
  defp await_data(sock, buf) do
    case buf do
      <<_len::24, 0, _flags, _::1, 1::31, _::binary>> ->
        :ok

      <<len::24, _::binary-size(6), _payload::binary-size(len), rest::binary>> ->
        await_data(sock, rest)

      _ ->
        {:ok, more} = :gen_tcp.recv(sock, 0, 5_000)
        await_data(sock, buf <> more)
    end
  end
end
