defmodule H2Flow.StatsTest do
  # H2Flow.stats/1 reads the server's shared counters: it never waits on a connection (here
  # suspended ones, and a server busy draining), gauges leave with their connection however it
  # ends (a killed process included), peaks stay; stats(server, :connections) asks each one.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.H2Client

  defp waiter(test), do: fn req -> wait_for_go(test, req) && Req.reply(200, %{}, "done", req) end

  # `n` connections, each with a request whose handler waits.
  defp open_requests(port, n) do
    conns =
      for _ <- 1..n do
        conn = connect!(port)
        {:ok, conn, 1} = H2Client.request(conn, "GET", "/wait")
        conn
      end

    {conns, waiting(n)}
  end

  test "stats/1 answers while every connection is suspended (it asks none of them)" do
    {server, port} = start_server!(waiter(self()))
    {conns, handlers} = open_requests(port, 20)
    pids = connections(server)
    assert length(pids) == 20
    # Each connection reports when it flushes, right after starting its handler.
    eventually(fn -> stat(server, :handlers_started) == 20 end)
    Enum.each(pids, &:sys.suspend/1)

    # Asking the connections would wait 5 s on each; the bound is generous for reading counters.
    task = Task.async(fn -> H2Flow.stats(server) end)
    assert {:ok, stats} = Task.yield(task, 2_000)

    assert %{connections: 20, open_streams: 20, handlers_started: 20, streams_opened: 20} = stats
    assert stats.peak_open_streams == 1

    # Per-connection detail does ask them: the suspended ones are left out after the timeout.
    assert H2Flow.stats(server, :connections, 100) == []
    Enum.each(pids, &:sys.resume/1)

    detail = H2Flow.stats(server, :connections)
    assert length(detail) == 20
    assert Enum.sort(Enum.map(detail, & &1.pid)) == Enum.sort(pids)

    for d <- detail,
        do: assert(%{open_streams: 1, streams_opened: 1, peer: {{127, 0, 0, 1}, _}} = d)

    for {pid, _} <- handlers, do: send(pid, :go)

    for conn <- conns,
        do: assert({:ok, _, %{status: 200}} = H2Client.read_response(conn, 1))
  end

  test "gauges leave with their connection, however it ends; counters and peaks stay" do
    {server, port} = start_server!(waiter(self()))
    {[a, b, c], handlers} = open_requests(port, 3)
    # A connection reports at its flush, which can come after its handler said it waits.
    eventually(fn -> stat(server, :open_streams) == 3 end)

    assert %{connections: 3, open_streams: 3, connection_window: window} = H2Flow.stats(server)
    assert window == 3 * 1_048_576

    # The connection process serving each client, by the client's address.
    by_peer = Map.new(H2Flow.stats(server, :connections), &{&1.peer, &1.pid})
    server_side = fn conn -> Map.fetch!(by_peer, elem(:inet.sockname(conn.socket), 1)) end

    handler_of = fn conn ->
      pid = server_side.(conn)
      Enum.find_value(handlers, fn {h, req} -> req.conn == pid && h end)
    end

    # a closes; b's connection is killed (its engine leaves the totals when it is freed); c
    # finishes its request.
    H2Client.close(a)
    eventually(fn -> stat(server, :connections) == 2 end)
    Process.exit(server_side.(b), :kill)
    eventually(fn -> stat(server, :connections) == 1 end)
    send(handler_of.(c), :go)
    assert {:ok, _, %{status: 200}} = H2Client.read_response(c, 1)

    stats =
      eventually(fn ->
        s = H2Flow.stats(server)
        s.open_streams == 0 and s
      end)

    assert %{
             connections: 1,
             connections_closed: 2,
             streams_opened: 3,
             handlers_started: 3,
             peak_open_streams: 1,
             buffered_bytes: 0,
             queued_send_bytes: 0,
             connection_window: 1_048_576
           } = stats

    # a's handler was stopped by its connection; b's died with it (no one to count it).
    assert stats.handlers_stopped == 1
    assert stats.frames_received.headers == 3
  end

  test "stats/1 answers while the server drains (its supervisor is busy waiting)" do
    test = self()

    {:ok, server} =
      H2Flow.start_link(
        handler: H2Flow.Test.FunHandler,
        handler_opts: waiter(test),
        port: 0,
        ip: {127, 0, 0, 1}
      )

    conn = connect!(H2Flow.port(server))
    {:ok, conn, 1} = H2Client.request(conn, "GET", "/wait")
    [{handler, _}] = waiting(1)
    stopper = Task.async(fn -> H2Flow.stop(server) end)
    {:ok, conn, _} = H2Client.recv_until(conn, &match?({:goaway, _, _, _}, &1))

    task = Task.async(fn -> H2Flow.stats(server) end)
    assert {:ok, %{connections: 1, open_streams: 1}} = Task.yield(task, 2_000)

    send(handler, :go)
    assert {:ok, _, %{status: 200, body: "done"}} = H2Client.read_response(conn, 1)
    assert :ok = Task.await(stopper)
  end
end
