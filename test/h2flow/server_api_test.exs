defmodule H2Flow.ServerApiTest do
  # H2Flow's public API over real sockets: options, child_spec, port/1, stats/1 and stop/1.
  use ExUnit.Case, async: true

  import H2Flow.Test.ServerHelpers

  alias H2Flow.Req
  alias H2Flow.Test.{FunHandler, H2Client}

  defp echo(req) do
    {:ok, body, req} = Req.read_body(req)
    Req.reply(200, %{"x-path" => Req.path(req)}, body, req)
  end

  describe "start_link/1 options" do
    test "unknown keys raise, naming the key" do
      for opts <- [[foo: 1], [max_streams: 10], [tls_opts: []]] do
        {key, _} = hd(opts)

        assert_raise ArgumentError, ~r/unknown (engine )?option #{inspect(key)}/, fn ->
          H2Flow.start_link([handler: FunHandler, port: 0] ++ opts)
        end
      end
    end

    test "a missing or wrong handler raises" do
      assert_raise ArgumentError, ~r/:handler is required/, fn -> H2Flow.start_link(port: 0) end

      for handler <- [NoSuchModule, String, "FunHandler", nil] do
        assert_raise ArgumentError, ~r/:handler/, fn ->
          H2Flow.start_link(handler: handler, port: 0)
        end
      end
    end

    test "bad values raise" do
      for {opt, message} <- [
            {[port: -1], ~r/:port/},
            {[port: 70_000], ~r/:port/},
            {[port: "8080"], ~r/:port/},
            {[transport: :udp], ~r/:transport/},
            {[ip: "127.0.0.1"], ~r/:ip/},
            {[ip: {127, 0, 0}], ~r/:ip/},
            {[tls: :yes], ~r/:tls/},
            {[transport: :tls], ~r/certificate/},
            {[acceptors: 0], ~r/:acceptors/},
            {[max_connections: -5], ~r/:max_connections/},
            {[idle_timeout: :never], ~r/:idle_timeout must be .* or :infinity, got: :never/},
            {[preface_timeout: 1.5], ~r/:preface_timeout/},
            {[shutdown_timeout: nil], ~r/:shutdown_timeout/},
            {[read_buffer: 0], ~r/:read_buffer/},
            {[max_concurrent_streams: -1], ~r/:max_concurrent_streams/},
            {[initial_connection_window: 1000], ~r/:initial_connection_window/},
            {[initial_stream_window: 2_147_483_648], ~r/:initial_stream_window/},
            {[adaptive_window: :sometimes], ~r/:adaptive_window/},
            {[peer_reset_rate: 100], ~r/:peer_reset_rate/}
          ] do
        assert_raise ArgumentError, message, fn ->
          H2Flow.start_link([handler: FunHandler, port: 0] ++ opt)
        end
      end
    end

    test "engine options reach the engine: the SETTINGS advertise them" do
      {_server, port} =
        start_server!(&echo/1,
          max_concurrent_streams: 7,
          initial_stream_window: 100_000,
          max_frame_size: 32_768
        )

      {:ok, conn} = H2Client.connect("127.0.0.1", port)
      :ok = H2Client.send_preface(conn)
      {:ok, _conn, frames} = H2Client.recv_until(conn, &match?({:window_update, 0, _}, &1))
      assert [{:settings, false, params}, {:window_update, 0, increment}] = frames
      assert {:max_concurrent_streams, 7} in params
      assert {:initial_window_size, 100_000} in params
      assert {:max_frame_size, 32_768} in params
      # The default connection window, 1 MiB, from 65,535.
      assert increment == 1_048_576 - 65_535
    end

    test ":name registers the server" do
      name = :"h2flow_api_test_#{System.unique_integer([:positive])}"
      {_server, port} = start_server!(&echo/1, name: name)
      assert H2Flow.port(name) == port
      assert is_pid(Process.whereis(name))
    end
  end

  test "child_spec/1: servers start under a supervisor, several at once, and serve" do
    fun = &echo/1
    spec = {H2Flow, handler: FunHandler, handler_opts: fun, port: 0, ip: {127, 0, 0, 1}}

    sup =
      start_supervised!(%{
        id: :sup,
        start: {Supervisor, :start_link, [[spec, spec], [strategy: :one_for_one]]},
        type: :supervisor
      })

    children = Supervisor.which_children(sup)
    assert [{{H2Flow, _}, a, :supervisor, _}, {{H2Flow, _}, b, :supervisor, _}] = children
    assert H2Flow.port(a) != H2Flow.port(b)

    for server <- [a, b] do
      conn = connect!(H2Flow.port(server))
      {:ok, conn, id} = H2Client.request(conn, "POST", "/sup", [], "under a supervisor")

      assert {:ok, _, %{status: 200, body: "under a supervisor"}} =
               H2Client.read_response(conn, id)
    end

    assert %{id: {H2Flow, :my_server}, type: :supervisor} =
             H2Flow.child_spec(handler: FunHandler, name: :my_server)
  end

  test "port/1 is the bound port of a server started on port 0" do
    {server, port} = start_server!(&echo/1)
    assert port in 1..65_535
    assert {:ok, socket} = :gen_tcp.connect(~c"127.0.0.1", H2Flow.port(server), [])
    :gen_tcp.close(socket)
  end

  describe "stats/1" do
    test "a server without connections yet answers every key, at zero" do
      {server, _port} = start_server!(&echo/1)
      stats = H2Flow.stats(server)
      {:ok, engine} = H2Flow.Engine.new()

      for key <-
            Map.keys(H2Flow.Engine.stats(engine)) ++
              [:writes, :handlers_started, :handler_crashes, :handlers_stopped] do
        assert Map.has_key?(stats, key), "missing #{inspect(key)}"
      end

      assert %{connections: 0, connections_closed: 0, streams_opened: 0, writes: 0} = stats
      assert stats.frames_sent.headers == 0 and stats.defences.rapid_reset == 0
    end

    test "sums live and closed connections; writes equal flushes; counters never go back" do
      {server, port} = start_server!(&echo/1)

      a = connect!(port)
      b = connect!(port)

      {a, ids_a} = requests(a, 3, "aaaa")
      {b, ids_b} = requests(b, 2, "bbbbbbbb")
      assert ids_a == [1, 3, 5] and ids_b == [1, 3]

      live = H2Flow.stats(server)

      assert %{
               connections: 2,
               connections_closed: 0,
               streams_opened: 5,
               handlers_started: 5,
               handler_crashes: 0,
               handlers_stopped: 0,
               data_bytes_received: 28,
               data_bytes_sent: 28
             } = live

      assert live.frames_sent.headers == 5
      assert live.frames_received.headers == 5
      # Each non-empty flush of an engine is one socket write.
      assert live.writes == live.flushes and live.writes >= 2

      H2Client.close(a)
      eventually(fn -> stat(server, :connections) == 1 end)
      closed = H2Flow.stats(server)

      assert %{connections: 1, connections_closed: 1, streams_opened: 5, handlers_started: 5} =
               closed

      assert closed.data_bytes_received == 28 and closed.writes == closed.flushes
      assert closed.writes >= live.writes

      # Gauges of closed connections are dropped; peaks stay.
      assert closed.open_streams == 0
      assert closed.peak_open_streams >= 1

      {b, _} = requests(b, 1, "c")
      H2Client.close(b)
      eventually(fn -> stat(server, :connections_closed) == 2 end)
      assert %{connections: 0, streams_opened: 6, data_bytes_received: 29} = H2Flow.stats(server)
    end

    test "connections closing while stats/1 runs are counted exactly once" do
      {server, port} = start_server!(&echo/1)

      # Each client makes one request and closes; stats/1 is read all the while. A connection
      # that closes between reading the closed counters and the live ones must not vanish from
      # the sum, nor be counted twice.
      clients =
        for _ <- 1..20 do
          Task.async(fn ->
            conn = connect!(port)
            {conn, _} = requests(conn, 1, "x")
            H2Client.close(conn)
          end)
        end

      sampler = Task.async(fn -> sample(server, []) end)
      Enum.each(clients, &Task.await/1)
      send(sampler.pid, :stop)
      samples = Task.await(sampler)
      eventually(fn -> stat(server, :connections_closed) == 20 end)
      assert %{streams_opened: 20, data_bytes_received: 20} = H2Flow.stats(server)

      # Counters are monotonic across samples.
      for [earlier, later] <- Enum.chunk_every(Enum.reverse(samples), 2, 1, :discard) do
        assert later.streams_opened >= earlier.streams_opened
        assert later.data_bytes_received >= earlier.data_bytes_received
        assert later.streams_opened <= 20
      end
    end
  end

  defp sample(server, acc) do
    acc = [H2Flow.stats(server) | acc]

    receive do
      :stop -> acc
    after
      0 -> sample(server, acc)
    end
  end

  describe "stop/1" do
    test "GOAWAY to every connection; in-flight streams complete; then everything closes" do
      test = self()

      fun = fn req ->
        if Req.path(req) == "/slow", do: wait_for_go(test, req)
        Req.reply(200, %{}, "done #{Req.path(req)}", req)
      end

      {:ok, server} =
        H2Flow.start_link(
          handler: FunHandler,
          handler_opts: fun,
          port: 0,
          ip: {127, 0, 0, 1}
        )

      port = H2Flow.port(server)
      busy = connect!(port)
      idle = connect!(port)
      {:ok, busy, 1} = H2Client.request(busy, "GET", "/slow")
      [{handler, _req}] = waiting(1)

      stopper = Task.async(fn -> H2Flow.stop(server) end)

      # Both connections get a graceful GOAWAY: the busy one keeps stream 1.
      assert {:ok, busy, [{:goaway, 1, :no_error, _}]} = recv_goaway(busy)
      assert {:ok, idle, [{:goaway, 0, :no_error, _}]} = recv_goaway(idle)
      # The idle connection is closed at once; the listener no longer accepts.
      assert {:error, _, :closed} = H2Client.recv(idle, 5_000)
      assert {:error, :econnrefused} = :gen_tcp.connect(~c"127.0.0.1", port, [])

      # A stream opened after the GOAWAY is ignored (RFC 9113 6.8).
      {:ok, busy, 3} = H2Client.request(busy, "GET", "/late")
      refute Task.yield(stopper, 0)

      send(handler, :go)
      assert {:ok, busy, %{status: 200, body: "done /slow"}} = H2Client.read_response(busy, 1)
      assert {:error, _, :closed} = H2Client.recv(busy, 5_000)
      assert :ok = Task.await(stopper)
      refute Process.alive?(server)
      refute_received {:waiting, _, _}
    end

    test "streams still running after :shutdown_timeout are stopped" do
      test = self()

      {:ok, server} =
        H2Flow.start_link(
          handler: FunHandler,
          handler_opts: fn req ->
            wait_for_go(test, req)
            req
          end,
          port: 0,
          ip: {127, 0, 0, 1},
          shutdown_timeout: 100
        )

      conn = connect!(H2Flow.port(server))
      {:ok, conn, 1} = H2Client.request(conn, "GET", "/forever")
      [{handler, _}] = waiting(1)
      ref = Process.monitor(handler)

      assert :ok = H2Flow.stop(server)
      assert_receive {:DOWN, ^ref, :process, ^handler, _}, 5_000
      assert {:ok, conn, [{:goaway, 1, :no_error, _}]} = recv_goaway(conn)
      assert {:error, _, :closed} = H2Client.recv(conn, 5_000)
      refute Process.alive?(server)
    end
  end

  defp recv_goaway(conn) do
    with {:ok, conn, frames} <- H2Client.recv_until(conn, &match?({:goaway, _, _, _}, &1)) do
      {:ok, conn, Enum.filter(frames, &match?({:goaway, _, _, _}, &1))}
    end
  end

  # Sends `n` POSTs of `body`, one after the other; returns the connection and the stream ids.
  defp requests(conn, n, body) do
    Enum.map_reduce(1..n, conn, fn _, conn ->
      {:ok, conn, id} = H2Client.request(conn, "POST", "/r", [], body)
      {:ok, conn, %{status: 200, body: ^body}} = H2Client.read_response(conn, id)
      {id, conn}
    end)
    |> then(fn {ids, conn} -> {conn, ids} end)
  end
end
