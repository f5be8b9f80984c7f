defmodule H2Flow.LoadTest do
  # No false alarms: honest load, h2load's and a browser's, trips no defence; and what 1,000
  # connections cost. Not async: memory is measured for the whole VM and OS process, and
  # h2load wants the CPU.
  use ExUnit.Case, async: false

  import H2Flow.Test.AttackHelpers
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  @moduletag timeout: 300_000

  @kib 1024

  # "/": 200 "ok" (a POST's body is read first). "/hold": waits for :release. "/wait": tells
  # the test and waits for :go.
  defp handler(test) do
    fn req ->
      case {Req.method(req), Req.path(req)} do
        {"POST", _} ->
          req = read_all(req)
          Req.reply(200, %{}, "ok", req)

        {_, "/hold"} ->
          receive(do: (:release -> Req.reply(200, %{}, "released", req)))

        {_, "/wait"} ->
          wait_for_go(test, req)
          Req.reply(200, %{}, "ok", req)

        _ ->
          Req.reply(200, %{}, "ok", req)
      end
    end
  end

  defp read_all(req) do
    case Req.read_body(req) do
      {:ok, _, req} -> req
      {:more, _, req} -> read_all(req)
    end
  end

  describe "h2load -n 200000 -c 10 -m 100" do
    setup do
      h2load = System.find_executable("h2load") || flunk("h2load is not on PATH")
      {server, port} = start_server!(handler(self()))
      %{h2load: h2load, server: server, port: port}
    end

    test "GET: no request fails, no defence trips", ctx do
      h2load!(ctx, "GET", [])
    end

    @tag :tmp_dir
    test "POST of 16 KiB bodies: no request fails, no defence trips", ctx do
      body = Path.join(ctx.tmp_dir, "body")
      File.write!(body, :crypto.strong_rand_bytes(16 * @kib))
      h2load!(ctx, "POST 16 KiB", ["-d", body])
    end
  end

  defp h2load!(%{h2load: h2load, server: server, port: port}, name, args) do
    url = "http://127.0.0.1:#{port}/"
    args = ["-n", "200000", "-c", "10", "-m", "100"] ++ args ++ [url]
    {out, status} = System.cmd(h2load, args, stderr_to_stdout: true)
    assert status == 0, out

    assert out =~
             "requests: 200000 total, 200000 started, 200000 done, 200000 succeeded, " <>
               "0 failed, 0 errored, 0 timeout"

    assert out =~ "status codes: 200000 2xx, 0 3xx, 0 4xx, 0 5xx"
    [finished] = Regex.run(~r/finished in .*req\/s/, out)
    IO.puts("\nh2load #{name}: #{finished}")

    # h2load closes its connections at the end; count once they are all closed.
    eventually(fn -> stat(server, :connections) == 0 end, 10_000)
    stats = H2Flow.stats(server)
    assert stats.defences == defences()
    assert stats.defences_triggered == 0
    assert stats.connection_errors == errors()
    assert stats.stream_errors == errors()
    assert stats.streams_refused == 0
    assert stats.streams_opened == 200_000
    assert stats.handler_crashes == 0
  end

  # Rounds of 100 requests cancelled at once, 8 rounds a second: 1,600 RST_STREAM CANCEL in
  # 2 s on one connection, beyond the reset burst (1,000) but within burst + rate (500/s).
  # The pacing only holds the client back: the server counts against its own clock, so a
  # slower client can only make the test easier.
  test "a browser's bursts of RST_STREAM CANCEL do not kill the connection" do
    {server, port} = start_server!(handler(self()))
    conn = connect!(port)
    connection = connection!(server)
    start = System.monotonic_time(:millisecond)

    conn =
      Enum.reduce(0..15, conn, fn round, conn ->
        ids = for i <- 0..99, do: conn.next_stream_id + 2 * i
        opened = for id <- ids, do: headers_frame(id, request_fields("GET", "/hold"))
        cancelled = for id <- ids, do: rst_frame(id)
        :ok = H2Client.send_raw(conn, [opened, cancelled])
        Process.sleep(max(start + (round + 1) * 125 - System.monotonic_time(:millisecond), 0))
        %{conn | next_stream_id: conn.next_stream_id + 200}
      end)

    conn = assert_get(conn)
    assert connections(server) == [connection]
    stats = H2Flow.stats(server)
    assert stats.streams_reset_by_peer == 1_600
    assert stats.handlers_stopped == 1_600
    assert stats.defences == defences()
    assert stats.connection_errors == errors()
    eventually(fn -> handler_processes() == [] end)
    H2Client.close(conn)
  end

  # Memory per idle connection, then a request in flight on each. The clients live in another
  # OS process (python-hyper's h2), so the measures are the server's alone.
  test "1,000 concurrent connections, each with a stream in flight, all served" do
    n = 1_000
    {server, port} = start_server!(handler(self()))
    # Warm up: the first client of the VM starts services that stay.
    assert_served(port)
    eventually(fn -> stat(server, :connections) == 0 end)
    # Once for the code and data memory/0 itself uses, then for the measure.
    _ = memory()
    gc_all()
    before = memory()

    task = python_task("hold", port, [n, "/wait"])
    assert_receive {:h2_scenario, "ready"}, 30_000
    # Each connection read the client's SETTINGS and the acknowledgement of ours.
    eventually(fn ->
      s = H2Flow.stats(server)
      s.connections == n and s.frames_received.settings == 2 * n + 2
    end)

    gc_all()
    idle = memory()
    beam = div(idle.total - before.total, n)
    rss = div(idle.rss - before.rss, n)
    own = connections(server) |> Enum.map(&process_memory/1) |> Enum.sum() |> div(n)

    IO.puts(
      "\n#{n} idle connections, each: #{own} bytes of connection process, #{beam} bytes of " <>
        "BEAM memory (:erlang.memory total: processes, ports, supervisor), #{rss} bytes of " <>
        "resident set (VmRSS: the engine's memory and the allocators' included)"
    )

    assert own < 32 * @kib
    assert beam < 64 * @kib
    assert rss < 128 * @kib

    python_input(task, "go")
    assert_receive {:h2_scenario, "sent"}, 30_000
    waiting = waiting(n, 10_000)
    # Every request is in flight at once before any is answered (as the connections report at
    # their next flush).
    eventually(fn -> stat(server, :open_streams) == n end)
    for {pid, _req} <- waiting, do: send(pid, :go)

    assert %{statuses: %{200 => ^n}} = Task.await(task, 60_000)
    eventually(fn -> stat(server, :connections) == 0 end, 10_000)
    stats = H2Flow.stats(server)
    assert stats.streams_opened == n + 1
    assert stats.peak_open_streams == 1
    assert stats.handler_crashes == 0
    assert stats.connection_errors == errors()
    assert stats.defences == defences()
  end
end
