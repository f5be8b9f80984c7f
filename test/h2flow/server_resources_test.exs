defmodule H2Flow.ServerResourcesTest do
  # What the server holds on to: memory under an upload nobody reads, processes after resets
  # and disconnects, and what it logs about peers. Not async: these measure the whole VM
  # (memory, process count, the global logger), so no other test may run meanwhile.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  @mib 1024 * 1024

  test "a handler that never reads a 64 MiB upload: memory stays near the connection window" do
    test = self()

    {server, port} =
      start_server!(
        fn req ->
          send(test, {:upload, self()})
          receive(do: (:reply -> Req.reply(200, %{}, "not read", req)))
        end,
        # Stream windows larger than the connection window: the connection's 1 MiB binds.
        initial_stream_window: 4 * @mib
      )

    :erlang.garbage_collect()
    binary_before = :erlang.memory(:binary)
    task = python_task("upload", port, [64 * @mib, "/upload"])
    assert_receive {:upload, handler}, 10_000
    assert_receive {:h2_scenario, "blocked " <> sent}, 20_000
    sent = String.to_integer(sent)
    # The client is stopped by flow control at the connection window, having sent 1 MiB.
    assert sent == @mib

    eventually(fn -> stat(server, :buffered_bytes) == sent end)
    connection = connection!(server)
    :erlang.garbage_collect(connection)
    [memory: heap, binary: binaries] = Process.info(connection, [:memory, :binary])
    # Each refc binary once, whatever the number of references to it.
    refc = binaries |> Enum.uniq_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1)) |> Enum.sum()
    binary_delta = :erlang.memory(:binary) - binary_before
    stats = H2Flow.stats(server)

    IO.puts(
      "\n64 MiB upload, never read: client blocked after #{sent} bytes; connection process " <>
        "#{heap} bytes (heap etc.), refc binaries #{refc} bytes; VM binary memory " <>
        "+#{binary_delta} bytes; engine peak_buffered_bytes #{stats.peak_buffered_bytes}, " <>
        "connection window #{stats.connection_window}"
    )

    assert refc < 4 * @mib
    assert heap < 4 * @mib
    assert binary_delta < 4 * @mib
    assert stats.peak_buffered_bytes <= stats.connection_window
    assert stats.connection_window == @mib

    send(handler, :reply)
    result = Task.await(task, 30_000)
    assert %{status: 200, body: 8} = result.responses[result.stream]
    assert result.sent == sent
  end

  describe "processes" do
    setup do
      test = self()

      {server, port} =
        start_server!(fn req ->
          case Req.path(req) do
            "/quick" ->
              Req.reply(200, %{}, "quick", req)

            _ ->
              req = Req.stream_reply(200, req)
              send(test, {:streaming, self()})
              stream_forever(req)
          end
        end)

      # The first client of the VM starts services (a resolver, a logger watcher) that stay:
      # run each kind of client once before counting.
      capture_log(fn ->
        %{responses: %{1 => %{status: 200}}} = python!("get", port, ["/quick"])
        conn = connect!(port)
        {:ok, conn, id} = H2Client.request(conn, "GET", "/quick")
        {:ok, conn, %{status: 200}} = H2Client.read_response(conn, id)
        H2Client.close(conn)
      end)

      eventually(fn -> stat(server, :connections) == 0 end)
      %{server: server, port: port, stats: H2Flow.stats(server)}
    end

    test "peer resets streams while their handlers stream: no crash, handlers stopped, " <>
           "counters right, process count back to its baseline",
         %{server: server, port: port, stats: before} do
      baseline = :erlang.system_info(:process_count)
      own = server_processes(server)

      log =
        capture_log([level: :warning], fn ->
          task = python_task("reset", port, [20, "/stream", "/quick"])

          pids = for _ <- 1..20, do: receive_streaming()
          assert_receive {:h2_scenario, "streaming"}, 20_000
          assert length(server_processes(server)) == length(own) + 1 + 20
          refs = Enum.map(pids, &monitor!/1)
          python_input(task, "reset")
          assert_receive {:h2_scenario, "reset"}, 20_000
          for ref <- refs, do: assert_receive({:DOWN, ^ref, :process, _, :killed}, 5_000)

          result = Task.await(task, 30_000)
          assert %{status: 200, body: 5} = result.responses[result.after]
          assert result.terminated == nil

          for id <- 1..39//2 do
            assert %{status: 200, reset: nil} = result.responses[id]
            assert result.responses[id].body > 0
          end
        end)

      assert log == ""
      eventually(fn -> stat(server, :connections) == 0 end)

      assert %{
               streams_opened: 21,
               streams_reset_by_peer: 20,
               handlers_started: 21,
               handlers_stopped: 20,
               handler_crashes: 0,
               connections_closed: 1
             } = delta(before, H2Flow.stats(server))

      assert server_processes(server) == own
      eventually(fn -> :erlang.system_info(:process_count) <= baseline end)
    end

    test "a peer that disconnects mid-stream leaves no process behind", %{
      server: server,
      port: port,
      stats: before
    } do
      baseline = :erlang.system_info(:process_count)
      own = server_processes(server)

      log =
        capture_log([level: :warning], fn ->
          for round <- 1..5 do
            conn = connect!(port, initial_window_size: 4096)

            Enum.reduce(1..10, conn, fn _, conn ->
              {:ok, conn, _id} = H2Client.request(conn, "GET", "/s")
              conn
            end)

            refs = for _ <- 1..10, do: monitor!(receive_streaming())
            connection = connection!(server)
            assert length(handlers(connection)) == 10
            conn_ref = monitor!(connection)
            H2Client.close(conn)

            # The close ends it; a monitor set up while it was already exiting reports
            # :noproc instead (the log and the counters below still show how it ended).
            assert_receive {:DOWN, ^conn_ref, :process, ^connection, reason}, 5_000
            assert reason in [{:shutdown, :closed}, :noproc]

            for ref <- refs, do: assert_receive({:DOWN, ^ref, :process, _, :killed}, 5_000)
            eventually(fn -> delta(before, H2Flow.stats(server)).connections_closed == round end)
          end
        end)

      assert log == ""

      assert %{handlers_started: 50, handlers_stopped: 50, handler_crashes: 0} =
               delta(before, H2Flow.stats(server))

      assert server_processes(server) == own
      eventually(fn -> :erlang.system_info(:process_count) <= baseline end)
    end
  end

  defp receive_streaming do
    assert_receive {:streaming, pid}, 10_000
    pid
  end

  # The processes of a server: its supervision tree, and every handler in the VM (no other
  # test runs meanwhile).
  defp server_processes(server) do
    handlers =
      for pid <- Process.list(),
          Process.info(pid, :initial_call) == {:initial_call, {H2Flow.Stream, :run, 4}},
          do: pid

    Enum.sort(tree(server) ++ handlers)
  end

  defp tree(sup) do
    children =
      for {_, pid, type, _} <- Supervisor.which_children(sup), is_pid(pid) do
        if type == :supervisor, do: tree(pid), else: [pid]
      end

    [sup | List.flatten(children)]
  end

  # Counters gained since `before` (top-level integers only).
  defp delta(before, now) do
    for {key, value} <- now,
        is_integer(value),
        into: %{},
        do: {key, value - Map.get(before, key, 0)}
  end

  test "peer misbehaviour is logged below warning, and does not harm other connections" do
    {server, port} =
      start_server!(fn req ->
        if Req.path(req) == "/hold", do: receive(do: (:never -> :ok))
        Req.reply(200, %{}, "ok", req)
      end)

    bystander = connect!(port)

    # {what the peer does, what it gets}: :closed (a connection error) or a stream reset.
    misbehave = [
      # An HTTP/1.1 request smuggling a body past its framing (400, then close).
      {fn conn ->
         H2Client.send_raw(
           conn,
           "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"
         )
       end, :closed},
      # A broken preface.
      {fn conn -> H2Client.send_raw(conn, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n") end, :closed},
      # DATA on stream 0 (RFC 9113 6.1).
      {fn conn ->
         :ok = H2Client.send_preface(conn)
         H2Client.send_data(conn, 0, "x", false)
       end, :closed},
      # A header block that is not HPACK.
      {fn conn ->
         :ok = H2Client.send_preface(conn)
         H2Client.send_headers_block(conn, 1, <<0xFF, 0xFF, 0xFF, 0xFF, 0xFF>>, true)
       end, :closed},
      # Gone in the middle of a frame.
      {fn conn ->
         :ok = H2Client.send_preface(conn)
         :ok = H2Client.send_raw(conn, <<0, 0, 100, 0, 0, 0, 0, 0, 1, "partial">>)
         H2Client.close(conn)
       end, :closed},
      # More body than the stream window (256 KiB) allows.
      {fn conn ->
         :ok = H2Client.send_preface(conn)
         {:ok, conn, id} = open_post(conn, "/hold")
         for _ <- 1..20, do: H2Client.send_data(conn, id, :binary.copy("f", 16_384), false)
         :ok
       end, {:rst_stream, 1, :flow_control_error}},
      # Resets of streams that were never opened (RFC 9113 5.1: idle).
      {fn conn ->
         :ok = H2Client.send_preface(conn)
         H2Client.send_rst_stream(conn, 5, :cancel)
       end, :closed}
    ]

    log =
      capture_log([level: :warning], fn ->
        for {fun, expected} <- misbehave do
          {:ok, conn} = H2Client.connect("127.0.0.1", port)
          fun.(conn)

          case expected do
            :closed ->
              assert {:error, _, reason} = drain(conn)
              assert reason in [:closed, :einval, :enotconn]

            {:rst_stream, id, code} ->
              assert {:ok, conn, _} =
                       H2Client.recv_until(conn, &match?({:rst_stream, ^id, ^code}, &1))

              H2Client.close(conn)
          end
        end

        {:ok, bystander, id} = H2Client.request(bystander, "GET", "/")
        assert {:ok, _, %{status: 200, body: "ok"}} = H2Client.read_response(bystander, id)
      end)

    assert log == ""
    # The bystander is the one connection left.
    eventually(fn -> length(connections(server)) == 1 end)
  end

  defp open_post(conn, path) do
    id = conn.next_stream_id

    headers = [
      {":method", "POST"},
      {":scheme", "http"},
      {":authority", "#{conn.host}:#{conn.port}"},
      {":path", path}
    ]

    :ok = H2Client.send_headers(conn, id, headers, false)
    {:ok, %{conn | next_stream_id: id + 2}, id}
  end

  # Reads until the server closes the connection (a closed client socket counts too).
  defp drain(conn) do
    case H2Client.recv_frame(conn, 5_000) do
      {:ok, conn, _frame} -> drain(conn)
      {:error, conn, :closed} -> {:error, conn, :closed}
      {:error, conn, {:malformed, _}} -> drain(%{conn | buffer: ""})
      other -> other
    end
  end

  defp stream_forever(req) do
    case Req.stream_body(:binary.copy("z", 1024), :nofin, req) do
      :ok -> stream_forever(req)
      {:error, :closed} -> req
    end
  end
end
