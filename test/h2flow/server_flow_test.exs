defmodule H2Flow.ServerFlowTest do
  # Flow control through the whole server, checked frame by frame with the raw client:
  # WINDOW_UPDATE batching, the concurrency limit, and send back-pressure.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  @kib 1024

  describe "receive windows" do
    test "64 × 16 KiB POSTs read late, all at once: all answered, ≤ 2 WINDOW_UPDATEs in ≤ 2 " <>
           "writes" do
      test = self()

      {server, port} =
        start_server!(fn req ->
          # The scenario of a handler that sleeps, then reads: every body has arrived by then.
          wait_for_go(test, req)
          {:ok, body, req} = Req.read_body(req)
          Req.reply(200, %{}, Integer.to_string(byte_size(body)), req)
        end)

      conn = connect!(port)
      body = :binary.copy("p", 16 * @kib)

      {conn, ids} =
        Enum.reduce(1..64, {conn, []}, fn _, {conn, ids} ->
          {:ok, conn, id} =
            H2Client.request(conn, "POST", "/post", [{"content-length", "16384"}], body)

          {conn, [id | ids]}
        end)

      handlers = waiting(64)
      # 64 × 16 KiB is the whole connection window (1 MiB): all of it is buffered, unread.
      eventually(fn -> stat(server, :buffered_bytes) == 64 * 16 * @kib end)
      for {pid, _} <- handlers, do: send(pid, :go)

      conn =
        Enum.reduce(Enum.reverse(ids), conn, fn id, conn ->
          assert {:ok, conn, %{status: 200, body: "16384"}} = H2Client.read_response(conn, id)
          conn
        end)

      {conn, _} = sync!(conn)
      client = H2Client.stats(conn)
      server_stats = H2Flow.stats(server)
      updates = client.window_updates.connection + client.window_updates.stream

      IO.puts(
        "\n64 × 16 KiB: #{updates} WINDOW_UPDATE frames (#{inspect(client.window_updates)}) " <>
          "in #{client.reads_with_window_update} socket reads; server: " <>
          "#{inspect(server_stats.window_update_frames)} in " <>
          "#{server_stats.flushes_with_window_updates} flushes"
      )

      assert updates <= 2
      assert client.reads_with_window_update <= 2
      assert server_stats.window_update_frames == client.window_updates
      assert server_stats.flushes_with_window_updates <= 2
      assert server_stats.peak_buffered_bytes <= 1_048_576
      assert %{streams_opened: 64, handlers_started: 64, handler_crashes: 0} = server_stats
    end

    test "WINDOW_UPDATEs that many handlers' reads cause leave in one write" do
      test = self()

      {server, port} =
        start_server!(fn req ->
          wait_for_go(test, req)
          {:more, data, req} = Req.read_body(req, length: 128 * @kib)
          send(test, {:read, Req.stream_id(req), byte_size(data)})
          receive(do: (:done -> Req.reply(200, req)))
        end)

      conn = connect!(port)
      # 8 bodies of unknown length, half a stream window (256 KiB) each: 1 MiB in all, the
      # connection window. Reading them releases a credit for every stream and the connection.
      ids =
        for i <- 0..7 do
          id = 2 * i + 1
          :ok = H2Client.send_headers(conn, id, post_headers(conn), false)

          for _ <- 1..8,
              do: :ok = H2Client.send_data(conn, id, :binary.copy("b", 16 * @kib), false)

          id
        end

      conn = %{conn | next_stream_id: 17}
      handlers = waiting(8)
      eventually(fn -> stat(server, :buffered_bytes) == 8 * 128 * @kib end)
      {conn, _} = sync!(conn)
      before = H2Client.stats(conn)

      # The reads reach the connection together: it handles them all, then writes once.
      connection = connection!(server)
      :ok = :sys.suspend(connection)
      for {pid, _} <- handlers, do: send(pid, :go)

      # The 8 reads (not, say, 7 and the connection's tick) are waiting in its mailbox.
      eventually(fn ->
        {:messages, messages} = Process.info(connection, :messages)
        Enum.count(messages, &match?({:"$h2flow", _, _, _, {:read, _, _}}, &1)) == 8
      end)

      :ok = :sys.resume(connection)

      for id <- ids, do: assert_receive({:read, ^id, 131_072}, 5_000)
      {conn, frames} = sync!(conn)
      after_ = H2Client.stats(conn)

      updates = for {:window_update, id, inc} <- frames, do: {id, inc}
      assert {0, 1_048_576} in updates
      assert Enum.sort(for {id, _} <- updates, id != 0, do: id) == ids
      assert Enum.all?(updates, fn {id, inc} -> id == 0 or inc == 131_072 end)
      assert after_.reads_with_window_update - before.reads_with_window_update == 1

      for {pid, _} <- handlers, do: send(pid, :done)
      H2Client.close(conn)
    end
  end

  describe "max_concurrent_streams" do
    test "300 streams at once against 100: the 100 accepted are answered, the other 200 " <>
           "refused, and the connection takes new streams afterwards" do
      test = self()

      {server, port} =
        start_server!(
          fn req ->
            wait_for_go(test, req)
            Req.reply(200, %{}, "stream #{Req.stream_id(req)}", req)
          end,
          max_concurrent_streams: 100
        )

      {:ok, conn} = H2Client.connect("127.0.0.1", port)
      :ok = H2Client.send_preface(conn)

      # All 300 before the server's SETTINGS are read, as a browser's first burst.
      {ids, conn} =
        Enum.map_reduce(1..300, conn, fn _, conn ->
          {:ok, conn, id} = H2Client.request(conn, "GET", "/burst")
          {id, conn}
        end)

      handlers = waiting(100)
      assert Enum.map(handlers, fn {_, req} -> req.stream_id end) == Enum.take(ids, 100)
      eventually(fn -> stat(server, :streams_refused) == 200 end)
      for {pid, _} <- handlers, do: send(pid, :go)

      conn =
        Enum.reduce(ids, conn, fn id, conn ->
          if id <= 199 do
            body = "stream #{id}"
            assert {:ok, conn, %{status: 200, body: ^body}} = H2Client.read_response(conn, id)
            conn
          else
            assert {:error, conn, {:rst_stream, :refused_stream}} =
                     H2Client.read_response(conn, id)

            conn
          end
        end)

      # Still usable: new streams are served, and nothing was a GOAWAY.
      {:ok, conn, 601} = H2Client.request(conn, "GET", "/after")
      [{pid, _}] = waiting(1)
      send(pid, :go)
      assert {:ok, conn, %{status: 200, body: "stream 601"}} = H2Client.read_response(conn, 601)
      refute Enum.any?(H2Client.frames(conn), &match?({:goaway, _, _, _}, &1))

      assert %{
               streams_opened: 101,
               streams_refused: 200,
               handlers_started: 101,
               peak_open_streams: 100
             } = stats = H2Flow.stats(server)

      assert stats.defences.refused_stream_flood == 0
    end
  end

  describe "send back-pressure" do
    test "stream_body blocks while the send queue is full, and resumes when the client " <>
           "opens its window" do
      test = self()
      chunk = :binary.copy("s", 16 * @kib)

      {server, port} =
        start_server!(fn req ->
          req = Req.stream_reply(200, req)

          for i <- 1..40 do
            :ok = Req.stream_body(chunk, :nofin, req)
            send(test, {:sent, i})
          end

          :ok = Req.stream_body("", :fin, req)
          req
        end)

      # A window of 0: nothing can be sent; the server queues, then makes the handler wait.
      conn = connect!(port, initial_window_size: 0)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/stream")

      for i <- 1..3, do: assert_receive({:sent, ^i}, 5_000)
      eventually(fn -> stat(server, :queued_send_bytes) == 64 * @kib end)
      [handler] = handlers(connection!(server))

      # (Eventually: it may still be between its send and its receive, preempted.)
      eventually(fn ->
        Process.info(handler, [:status, :current_function, :message_queue_len]) == [
          status: :waiting,
          current_function: {Req, :call, 2},
          message_queue_len: 0
        ]
      end)

      refute_received {:sent, 4}

      # Open the windows: the rest flows, and the handler finishes.
      :ok = H2Client.send_settings(conn, initial_window_size: 2_147_483_647)
      :ok = H2Client.send_window_update(conn, 0, 2_147_483_647 - 65_535)
      assert {:ok, _conn, %{status: 200, body: body}} = H2Client.read_response(conn, id)
      assert byte_size(body) == 40 * 16 * @kib
      assert_receive {:sent, 40}, 5_000

      # While the windows open (SETTINGS first, then WINDOW_UPDATE) the queue may refill to
      # just over the limit once more: never more than the limit plus one piece.
      stats = H2Flow.stats(server)
      assert stats.peak_queued_send_bytes in (64 * @kib)..(80 * @kib - 1)
      assert %{queued_send_bytes: 0, stream_stalls: stalls} = stats
      assert stalls >= 1
    end

    test "one large stream_body is queued in pieces: bounded by twice :max_send_queue" do
      big = :binary.copy("L", 1024 * @kib)

      {server, port} =
        start_server!(
          fn req ->
            req = Req.stream_reply(200, req)
            :ok = Req.stream_body(big, :fin, req)
            req
          end,
          max_send_queue: 16 * @kib
        )

      conn = connect!(port, initial_window_size: 0)
      {:ok, conn, id} = H2Client.request(conn, "GET", "/big")
      eventually(fn -> stat(server, :queued_send_bytes) >= 16 * @kib end)
      :ok = H2Client.send_settings(conn, initial_window_size: 2_147_483_647)
      :ok = H2Client.send_window_update(conn, 0, 2_147_483_647 - 65_535)
      assert {:ok, _conn, %{status: 200, body: ^big}} = H2Client.read_response(conn, id)
      assert stat(server, :peak_queued_send_bytes) <= 32 * @kib
    end
  end

  defp post_headers(conn) do
    [
      {":method", "POST"},
      {":scheme", "http"},
      {":authority", "#{conn.host}:#{conn.port}"},
      {":path", "/post"}
    ]
  end
end
