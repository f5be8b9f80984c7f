defmodule H2Flow.Server do
  @moduledoc false
  # The supervision tree of one server (after ThousandIsland's):
  #
  #   H2Flow.Server (rest_for_one)
  #   ├── Stats       accumulates the counters of closed connections; owns the listen socket
  #   ├── ConnSup     DynamicSupervisor of connection processes (max_children: max_connections)
  #   └── Acceptors   N processes blocked in accept/1, each handing sockets to ConnSup
  #
  # rest_for_one: if the listener goes, acceptors restart with the new socket.

  use Supervisor

  def start_link(config) do
    Supervisor.start_link(__MODULE__, config, Keyword.take(config.gen_opts, [:name]))
  end

  @impl true
  def init(config) do
    children = [
      {H2Flow.Server.Stats, {self(), config}},
      {DynamicSupervisor, strategy: :one_for_one, max_children: config.max_connections}
      |> Supervisor.child_spec(id: :connections),
      {H2Flow.Server.Acceptors, {self(), config}}
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end

  @doc false
  def child(server, id) do
    server
    |> Supervisor.which_children()
    |> Enum.find_value(fn {child_id, pid, _, _} -> child_id == id && is_pid(pid) && pid end)
  end
end

defmodule H2Flow.Server.Stats do
  @moduledoc false
  # Owns the listen socket (so it lives as long as the server) and keeps the summed counters of
  # connections that have closed; H2Flow.stats/1 adds those of live connections.

  use GenServer

  def start_link({server, config}), do: GenServer.start_link(__MODULE__, {server, config})

  @impl true
  def init({_server, config}) do
    case listen(config) do
      {:ok, socket} ->
        {:ok, %{socket: socket, config: config, closed: zero_stats(), connections_closed: 0}}

      {:error, reason} ->
        {:stop, {:listen_failed, reason}}
    end
  end

  defp listen(c) do
    opts = [{:ip, c.ip}, {:active, false}, reuseaddr: true, backlog: c.backlog, nodelay: true]
    opts = if c.transport == :tls, do: opts ++ tls(c), else: opts
    H2Flow.Transport.module(c.transport).listen(c.port, opts)
  end

  defp tls(c) do
    c.tls ++
      [
        alpn_preferred_protocols: ["h2"],
        versions: [:"tlsv1.3", :"tlsv1.2"],
        ciphers: ciphers()
      ]
  end

  # RFC 9113 9.2.2: TLS 1.2 must use an ephemeral key exchange and an AEAD cipher.
  defp ciphers do
    tls12 =
      :ssl.filter_cipher_suites(:ssl.cipher_suites(:default, :"tlsv1.2"),
        key_exchange: &(&1 in [:ecdhe_ecdsa, :ecdhe_rsa]),
        cipher: &(&1 in [:aes_128_gcm, :aes_256_gcm, :chacha20_poly1305])
      )

    :ssl.cipher_suites(:default, :"tlsv1.3") ++ tls12
  end

  # Every key H2Flow.stats/1 returns, at zero, so that a server without connections yet
  # answers with the same shape.
  defp zero_stats do
    {:ok, engine} = H2Flow.Engine.new()

    engine
    |> H2Flow.Engine.stats()
    |> Map.merge(H2Flow.Connection.counters())
    |> H2Flow.StatsMath.zero()
  end

  # The configuration holds the TLS options, private key included: never in a crash report.
  # gen_server's format_status/1 (OTP 25), which Elixir 1.14's GenServer does not declare.
  @doc false
  def format_status(status) do
    Map.new(status, fn
      {:state, state} -> {:state, Map.drop(state, [:config])}
      other -> other
    end)
  end

  @impl true
  def handle_call(:socket, _from, state), do: {:reply, state.socket, state}
  def handle_call(:config, _from, state), do: {:reply, state.config, state}

  # Stops accepting for good (H2Flow.stop/1, once the acceptors are gone): new clients are
  # refused at once instead of waiting in the backlog of a server that is going away.
  def handle_call(:close_listener, _from, state) do
    _ = H2Flow.Transport.module(state.config.transport).close(state.socket)
    {:reply, :ok, state}
  end

  # One consistent sum: closed connections plus the live ones, each counted once. A live
  # connection that closes while we ask it has sent its final counters before exiting, so they
  # are in our mailbox when its call fails; one that answers and then closes is counted from
  # its answer, and its final counters are added to `closed` after this call.
  def handle_call({:stats, conns}, _from, state) do
    {live, state} =
      Enum.reduce(conns, {%{}, state}, fn pid, {live, state} ->
        try do
          {H2Flow.StatsMath.add(live, GenServer.call(pid, :stats, 5_000)), state}
        catch
          :exit, _ ->
            receive do
              {:connection_closed, ^pid, stats} -> {live, closed(state, stats)}
            after
              0 -> {live, state}
            end
        end
      end)

    stats =
      state.closed
      |> H2Flow.StatsMath.add(live)
      |> Map.merge(%{connections_closed: state.connections_closed, connections: length(conns)})

    {:reply, stats, state}
  end

  @impl true
  def handle_info({:connection_closed, _pid, stats}, state), do: {:noreply, closed(state, stats)}

  defp closed(state, stats) do
    closed = H2Flow.StatsMath.add_closed(state.closed, stats)
    %{state | closed: closed, connections_closed: state.connections_closed + 1}
  end
end

defmodule H2Flow.Server.Acceptors do
  @moduledoc false
  # A supervisor of acceptor processes; each loops on accept and starts a connection process.

  use Supervisor

  def start_link({server, config}), do: Supervisor.start_link(__MODULE__, {server, config})

  @impl true
  def init({server, config}) do
    children =
      for i <- 1..config.acceptors do
        Supervisor.child_spec({Task, fn -> accept_loop(server, config) end},
          id: {:acceptor, i},
          restart: :permanent
        )
      end

    Supervisor.init(children, strategy: :one_for_one, max_restarts: 100, max_seconds: 1)
  end

  defp accept_loop(server, config) do
    # The server supervisor answers once it has started all its children; we are started
    # asynchronously (Task), so this cannot deadlock.
    stats = H2Flow.Server.child(server, H2Flow.Server.Stats)
    socket = GenServer.call(stats, :socket)
    conns = H2Flow.Server.child(server, :connections)
    # Connections get no TLS options: the listen socket has them, and a private key has no
    # business in a connection process's state.
    config = %{config | stats: stats, tls: []}
    loop(socket, conns, H2Flow.Transport.module(config.transport), config)
  end

  defp loop(socket, conns, transport, config) do
    case transport.accept(socket) do
      {:ok, sock} ->
        start_connection(sock, conns, transport, config)
        loop(socket, conns, transport, config)

      {:error, :closed} ->
        exit(:normal)

      {:error, _transient} ->
        loop(socket, conns, transport, config)
    end
  end

  defp start_connection(sock, conns, transport, config) do
    case DynamicSupervisor.start_child(conns, {H2Flow.Connection, {sock, config}}) do
      {:ok, pid} ->
        case transport.controlling_process(sock, pid) do
          :ok ->
            send(pid, :go)

          {:error, _} ->
            _ = transport.close(sock)
            Process.exit(pid, :kill)
        end

      {:error, _max_children} ->
        transport.close(sock)
    end
  end
end

defmodule H2Flow.StatsMath do
  @moduledoc false
  # Summing counters of several connections: counters add up, peaks take the maximum, and
  # gauges (what is true right now) only count for live connections.

  @gauges [
    :buffered_bytes,
    :queued_send_bytes,
    :open_streams,
    :connection_window,
    :stream_window,
    :rtt_us
  ]

  def add_closed(acc, stats), do: add(acc, Map.drop(stats, @gauges))

  def zero(stats) do
    Map.new(stats, fn
      {key, value} when is_map(value) -> {key, zero(value)}
      {key, _} -> {key, 0}
    end)
  end

  def add(acc, stats) do
    Enum.reduce(stats, acc, fn {key, value}, acc ->
      Map.update(acc, key, value, &combine(key, &1, value))
    end)
  end

  defp combine(_key, a, b) when is_map(a) and is_map(b), do: add(a, b)
  defp combine(key, a, b) when key in [:rtt_us], do: max(a, b)

  defp combine(key, a, b) do
    if String.starts_with?(Atom.to_string(key), "peak_"), do: max(a, b), else: a + b
  end
end
