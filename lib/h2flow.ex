defmodule H2Flow do
  @moduledoc """
  An HTTP/2 and HTTP/1.1 server for Cowboy-style handlers (or a Plug, option `:plug`), built
  around a flow-control engine that keeps memory bounded and WINDOW_UPDATE traffic minimal.

      defmodule MyApp.Hello do
        @behaviour H2Flow.Handler

        @impl true
        def init(req, state) do
          {:ok, body, req} = H2Flow.Req.read_body(req)
          req = H2Flow.Req.reply(200, %{"content-type" => "text/plain"}, "got \#{byte_size(body)}", req)
          {:ok, req, state}
        end
      end

      {:ok, server} = H2Flow.start_link(handler: MyApp.Hello, handler_opts: [], port: 0)
      H2Flow.port(server)     # the bound port
      H2Flow.stats(server)    # counters summed over connections, plus peaks
      H2Flow.stop(server)     # GOAWAY to every connection, drain in-flight streams, then close

  In a supervision tree:

      children = [{H2Flow, handler: MyApp.Hello, port: 8080}]

  A supervisor that stops the server (its application stopping, say) lets it drain as
  `stop/1` does: the child spec's `:shutdown` is `:shutdown_timeout` plus a few seconds.

  Each connection is one process that owns the socket and its engine (`H2Flow.Engine` for
  HTTP/2, the HTTP/1.1 engine beside it); each request runs its handler (`H2Flow.Handler`) in a
  process of its own, with the same `H2Flow.Req` API whatever the version (`H2Flow.Req.version/1`
  tells). One listener speaks both versions:

    * `transport: :tcp`: the client's first bytes decide: the HTTP/2 preface (h2c with prior
      knowledge), or an HTTP/1.x request line (HTTP/1.1 and 1.0; a request with `Upgrade: h2c`
      switches to HTTP/2, RFC 7540 §3.2, unless `h2c_upgrade: false`); anything else goes to
      the HTTP/2 engine, which answers an invalid preface with GOAWAY PROTOCOL_ERROR;
    * `transport: :tls`: ALPN offers `h2` and `http/1.1`, `h2` first; a client that offers no
      ALPN speaks HTTP/1.1.

  `http_versions: [:http2]` serves HTTP/2 only (an HTTP/1.x request gets a plain-text 505 and
  ALPN offers `h2` alone); `[:http1]` HTTP/1.1 only.

  ## Options

  A wrong option raises `ArgumentError` naming the option, the value given and what is
  expected; an unknown option lists the valid ones. TLS certificate and key files are checked
  when the server starts: `start_link/1` returns `{:error, {:tls_config, option, why}}` when one
  cannot be read or parsed, or when the key does not match the certificate.

    * `:handler`: the `H2Flow.Handler` module. One of `:handler` and `:plug` is required.
    * `:handler_opts` (default `[]`): passed to the handler's `init/2` as its state.
    * `:plug`: a module plug, `MyPlug` or `{MyPlug, opts}`, run for every request instead of a
      handler (exclusive with `:handler` and `:handler_opts`). Its `init/1` runs once, when the
      server starts; each request runs `call/2` in a process of its own with a `Plug.Conn`
      whose adapter is `H2Flow.Plug.Adapter`. Needs Plug in the application (h2flow does not
      depend on it). A plug that raises gets the status of `Plug.Exception.status/1` (500 for
      most errors, logged), or a RST_STREAM INTERNAL_ERROR once its response had started.
    * `:ip` (default `{0, 0, 0, 0}`), `:port` (default `8080`; `0` picks a free port, see
      `port/1`).
    * `:transport` (default `:tcp`): `:tcp` (h2c and HTTP/1.1) or `:tls` (h2 and HTTP/1.1 by
      ALPN).
    * `:http_versions` (default `[:http1, :http2]`): the versions served; `[:http2]` or
      `[:http1]` serve one.
    * `:tls` (default `[]`): `:ssl` server options, e.g. `certfile:`/`keyfile:` or
      `cert:`/`key:` (DER); see `H2Flow.TLS.self_signed/1` for tests and demos. ALPN, TLS
      versions and ciphers are set by h2flow.
    * `:acceptors` (default `4`): processes accepting connections.
    * `:max_connections` (default `16384`): connections beyond it are closed at once.
    * `:backlog` (default `1024`): the listen backlog.
    * `:preface_timeout` (default `10000` ms): time for the TLS handshake and the client's first
      bytes (over HTTP/2, its preface and SETTINGS frame).
    * `:idle_timeout` (default `60000` ms, or `:infinity`): a connection with no open stream and
      no complete frame received for this long gets GOAWAY and is closed (counted once the
      preface is in); over HTTP/1.1, a keep-alive connection without a request for this long
      is closed.
    * `:write_timeout` (default `30000` ms): a peer that does not read for this long while we
      write is disconnected.
    * `:shutdown_timeout` (default `15000` ms, as Bandit): how long a stopping server lets
      in-flight streams finish (`stop/1`, a supervisor or the application stopping), after
      which their handlers are stopped and the connections closed.
    * `:read_buffer` (default `262144`): bytes read from the socket at most per read (one
      message to the connection process per read; at most 4 such messages wait in its
      mailbox, 1 MiB by default). Request body bytes smaller than a quarter of their read are
      copied out of it, so that kept body bytes never pin more than four times their size: a
      16 KiB DATA frame is passed on without a copy when its read is at most 64 KiB (a slow
      upload), copied out of a larger one (many streams at once).
    * `:name`: registers the server's supervisor.
    * `:telemetry_metadata` (default `%{}`): merged into the metadata of every telemetry event
      of the server (see `H2Flow.Telemetry`).
    * `:startup_log` (default `false`): a Logger level (`:info`, say) to log a line naming the
      handler, transport, address and port when the server has started.
    * Engine options, for windows, limits and defences (see `H2Flow.Engine`):

  #{H2Flow.Engine.Options.docs()}

    * HTTP/1.1 options, its limits and defences (`:max_send_queue` and `:idle_timeout` above
      apply to HTTP/1.1 too). A request that breaks them, or smuggles (both Content-Length and
      Transfer-Encoding, Content-Lengths that differ, an invalid chunk size or extension,
      obs-fold, a bare CR or LF, whitespace before a colon), gets its status (400 unless said
      otherwise; 501 for a transfer coding other than chunked) with `connection: close`, after
      the responses before it, and the connection closes:

  #{H2Flow.HTTP1.Engine.option_docs()}

  The default request body `:period` of `H2Flow.Req.read_body/2` is 15,000 ms, as in Cowboy.
  """

  @typedoc "A running server (its supervisor)."
  @type server :: pid() | atom()

  # What a stopping server needs beyond :shutdown_timeout: connections close (a second of
  # linger), and those still there are stopped.
  @close_margin 5_000

  @doc """
  Returns a child specification to start a server under a supervisor. Its `:shutdown` lets the
  server drain: `:shutdown_timeout` plus #{@close_margin} ms.
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    drain = Keyword.get(opts, :shutdown_timeout, H2Flow.Config.defaults()[:shutdown_timeout])

    %{
      id: {__MODULE__, opts[:name] || make_ref()},
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor,
      shutdown: if(is_integer(drain), do: drain + @close_margin, else: :infinity)
    }
  end

  @doc """
  Starts a server linked to the caller. See the module doc for options.

  Returns `{:error, {:tls_config, option, why}}` before listening when the TLS certificate or
  key cannot be used, `{:error, reason}` when the port cannot be listened on.
  """
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts) when is_list(opts) do
    config = H2Flow.Config.build!(opts)

    with :ok <- check_tls(config),
         {:ok, pid} <- H2Flow.Server.start_link(config) do
      if config.startup_log, do: startup_log(pid, config)
      {:ok, pid}
    end
  end

  defp check_tls(%{transport: :tls, tls: tls}), do: H2Flow.Transport.TLSOptions.check(tls)
  defp check_tls(_config), do: :ok

  defp startup_log(pid, config) do
    {ip, port} = address(pid)

    {what, handler} =
      case config do
        %{handler: H2Flow.Plug.Handler, handler_opts: {plug, _}} -> {"plug", plug}
        %{handler: handler} -> {"handler", handler}
      end

    versions =
      [:http2, :http1]
      |> Enum.filter(&(&1 in config.http_versions))
      |> Enum.map_join(" and ", fn
        :http2 when config.transport == :tls -> "h2"
        :http2 -> "h2c"
        :http1 -> "HTTP/1.1"
      end)

    how = if config.transport == :tls, do: "#{versions} over TLS", else: versions

    require Logger

    Logger.log(
      config.startup_log,
      "h2flow: serving #{what} #{inspect(handler)} over #{how} at #{:inet.ntoa(ip)}:#{port}"
    )
  end

  @doc "The port the server listens on (useful with `port: 0`)."
  @spec port(server()) :: :inet.port_number()
  def port(server) do
    {_ip, port} = address(server)
    port
  end

  @doc "The address and port the server listens on."
  @spec address(server()) :: {:inet.ip_address(), :inet.port_number()}
  def address(server) do
    listener = H2Flow.Server.child(server, H2Flow.Server.Listener)
    socket = GenServer.call(listener, :socket)

    {:ok, address} =
      H2Flow.Transport.module(GenServer.call(listener, :config).transport).sockname(socket)

    address
  end

  @doc """
  Everything the server counted, over all its connections, live and closed. Reading it costs
  the same whatever the number of connections and never waits on one: every connection adds to
  the server's counters as it goes (the engine's at each flush of its output).

  Keys are those of `H2Flow.Engine.stats/1` (the HTTP/2 engines'), plus `:connections` (live,
  either version), `:connections_closed`, `:http2_connections` (live HTTP/2 connections),
  `:http1` (the HTTP/1.1 engines' counters: `:connections` live, `:requests`, `:responses`,
  bytes and body bytes both ways, `:continues_sent`, `:upgrades` to h2c, `:idle_timeouts`,
  `:input_pauses` (reading stopped for `:max_body_buffer`), `:buffered_bytes`,
  `:queued_bytes`, `:pipelined` and their peaks, and `:rejected`, refused requests by kind,
  with `:rejected_total`), `:requests` (by version: `%{"HTTP/1.0": n, "HTTP/1.1": n,
  "HTTP/2": n}`; an h2c upgrade's request is HTTP/2's),
  `:writes` (socket writes), `:handlers_started`, `:handler_crashes`, `:handlers_stopped`
  (handlers stopped because their stream was reset or their connection closed),
  `:tls_handshake_failures` (TLS handshakes that failed or timed out), and the connections
  closed by a timeout: `:preface_timeouts`, `:idle_timeouts` and `:write_timeouts` (a peer that
  did not read what we wrote for `:write_timeout` ms). How they combine:

    * counters (frames, bytes, streams, errors, defences, ...) are sums over every connection
      the server has had;
    * gauges, what is true now (`:connections`, `:open_streams`, `:buffered_bytes`,
      `:queued_send_bytes`, `:connection_window`, `:stream_window`), are sums over the live
      connections;
    * peaks (`:peak_open_streams`, `:peak_buffered_bytes`, `:peak_queued_send_bytes`) are the
      largest any one connection reached;
    * `:rtt_us` is the last round trip any connection measured.

  A connection reports what its engine counted when it flushes its output (once per burst of
  work), so what it has just received shows once it has answered. Per-connection detail:
  `stats(server, :connections)`.
  """
  @spec stats(server()) :: map()
  def stats(server) do
    server |> H2Flow.Server.counters() |> H2Flow.Server.Counters.read()
  end

  @doc """
  Each live connection's own stats (the keys of `H2Flow.Engine.stats/1`, its counters, `:pid`
  and `:peer`), asked of every connection at once. Unlike `stats/1` this waits for the
  connections' answers, for at most `timeout` ms in all: a connection that does not answer in
  time (or closes meanwhile) is left out.
  """
  @spec stats(server(), :connections, timeout()) :: [map()]
  def stats(server, :connections, timeout \\ 5_000) do
    pids = connections(server)
    deadline = System.monotonic_time(:millisecond) + timeout

    pids
    |> Enum.map(fn pid ->
      # A GenServer call without the wait (gen's own protocol): the monitor is also an alias
      # for the answer, so that an answer coming after the deadline is dropped.
      ref = :erlang.monitor(:process, pid, alias: :demonitor)
      send(pid, {:"$gen_call", {self(), [:alias | ref]}, :stats})
      ref
    end)
    |> Enum.flat_map(fn ref ->
      receive do
        {[:alias | ^ref], stats} ->
          Process.demonitor(ref, [:flush])
          [stats]

        {:DOWN, ^ref, _, _, _} ->
          []
      after
        max(deadline - System.monotonic_time(:millisecond), 0) ->
          Process.demonitor(ref, [:flush])
          []
      end
    end)
  end

  defp connections(server) do
    case H2Flow.Server.child(server, :connections) do
      nil -> []
      sup -> for {_, pid, _, _} <- DynamicSupervisor.which_children(sup), is_pid(pid), do: pid
    end
  end

  @doc """
  Stops the server gracefully: stops accepting, sends GOAWAY (NO_ERROR, the last stream id) to
  every connection, lets their in-flight streams finish for up to `:shutdown_timeout` ms, then
  closes everything. A supervisor stopping the server does the same.

  A server started under a supervisor of your own is restarted by it after `stop/1` (it is a
  permanent child): stop it with `Supervisor.terminate_child(supervisor, child_id)` instead,
  which drains it the same way.
  """
  @spec stop(server()) :: :ok
  def stop(server), do: Supervisor.stop(server, :normal, :infinity)
end
