defmodule H2Flow do
  @moduledoc """
  An HTTP/2 server for Cowboy-style handlers (or a Plug, option `:plug`), built around a
  flow-control engine that keeps memory bounded and WINDOW_UPDATE traffic minimal.

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

  Each connection is one process that owns the socket and the `H2Flow.Engine`; each request
  runs its handler (`H2Flow.Handler`) in a process of its own. Clients speak h2c with prior
  knowledge (`transport: :tcp`) or h2 over TLS with ALPN (`transport: :tls`).

  ## Options

  Unknown options raise `ArgumentError`.

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
    * `:transport` (default `:tcp`): `:tcp` (h2c, prior knowledge) or `:tls` (h2, ALPN).
    * `:tls` (default `[]`): `:ssl` server options, e.g. `certfile:`/`keyfile:` or
      `cert:`/`key:` (DER); see `H2Flow.TLS.self_signed/1` for tests and demos. ALPN, TLS
      versions and ciphers are set by h2flow.
    * `:acceptors` (default `4`): processes accepting connections.
    * `:max_connections` (default `16384`): connections beyond it are closed at once.
    * `:backlog` (default `1024`): the listen backlog.
    * `:preface_timeout` (default `10000` ms): time for the TLS handshake and the client preface
      (with its SETTINGS frame).
    * `:idle_timeout` (default `60000` ms): a connection with no open stream and no complete
      frame received for this long gets GOAWAY and is closed (counted once the preface is in).
    * `:write_timeout` (default `30000` ms): a peer that does not read for this long while we
      write is disconnected.
    * `:shutdown_timeout` (default `5000` ms): how long `stop/1` lets in-flight streams drain.
    * `:read_buffer` (default `65536`): bytes read from the socket at most per read (one
      message to the connection process per read). Request body bytes smaller than a quarter
      of their read are copied out of it, so that kept body bytes never pin more than four
      times their size; with 64 KiB reads, full 16 KiB DATA frames are not copied.
    * `:name`: registers the server's supervisor.
    * Engine options, for windows, limits and defences (see `H2Flow.Engine`):

  #{H2Flow.Engine.Options.docs()}

  The default request body `:period` of `H2Flow.Req.read_body/2` is 15,000 ms, as in Cowboy.
  """

  @server_defaults [
    handler_opts: [],
    ip: {0, 0, 0, 0},
    port: 8080,
    transport: :tcp,
    tls: [],
    acceptors: 4,
    max_connections: 16_384,
    backlog: 1024,
    preface_timeout: 10_000,
    idle_timeout: 60_000,
    write_timeout: 30_000,
    shutdown_timeout: 5_000,
    read_buffer: 65_536
  ]

  @typedoc "A running server (its supervisor)."
  @type server :: pid() | atom()

  @doc "Returns a child specification to start a server under a supervisor."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{
      id: {__MODULE__, opts[:name] || make_ref()},
      start: {__MODULE__, :start_link, [opts]},
      type: :supervisor
    }
  end

  @doc "Starts a server linked to the caller. See the module doc for options."
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts) when is_list(opts) do
    opts |> config!() |> H2Flow.Server.start_link()
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
    stats = H2Flow.Server.child(server, H2Flow.Server.Stats)
    socket = GenServer.call(stats, :socket)

    {:ok, address} =
      H2Flow.Transport.module(GenServer.call(stats, :config).transport).sockname(socket)

    address
  end

  @doc """
  Counters summed over all connections, live and closed (peaks are maxima; gauges such as
  `:buffered_bytes` and `:open_streams` cover live connections only). Keys are those of
  `H2Flow.Engine.stats/1`, plus `:connections` (live), `:connections_closed`, `:writes`,
  `:handlers_started`, `:handler_crashes`, `:handlers_stopped` (handlers stopped because
  their stream was reset or their connection closed), and the connections closed by a
  timeout: `:preface_timeouts`, `:idle_timeouts` and `:write_timeouts` (a peer that did not
  read what we wrote for `:write_timeout` ms).
  """
  @spec stats(server()) :: map()
  def stats(server) do
    stats_pid = H2Flow.Server.child(server, H2Flow.Server.Stats)
    GenServer.call(stats_pid, {:stats, connections(server)}, :infinity)
  end

  defp connections(server) do
    case H2Flow.Server.child(server, :connections) do
      nil -> []
      sup -> for {_, pid, _, _} <- DynamicSupervisor.which_children(sup), is_pid(pid), do: pid
    end
  end

  @doc """
  Stops the server gracefully: stops accepting, sends GOAWAY to every connection, lets their
  in-flight streams finish for up to `:shutdown_timeout` ms, then closes everything.
  """
  @spec stop(server()) :: :ok
  def stop(server) do
    stats = H2Flow.Server.child(server, H2Flow.Server.Stats)
    config = GenServer.call(stats, :config)
    _ = Supervisor.terminate_child(server, H2Flow.Server.Acceptors)
    :ok = GenServer.call(stats, :close_listener)
    conns = connections(server)
    refs = Enum.map(conns, &Process.monitor/1)
    Enum.each(conns, &send(&1, {:shutdown, config.shutdown_timeout}))
    deadline = System.monotonic_time(:millisecond) + config.shutdown_timeout + 1_000
    Enum.each(refs, &await_down(&1, deadline))
    Supervisor.stop(server)
  end

  defp await_down(ref, deadline) do
    timeout = max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {:DOWN, ^ref, _, _, _} -> :ok
    after
      timeout -> Process.demonitor(ref, [:flush])
    end
  end

  # Validates options (unknown keys raise) and builds the configuration every process shares.
  defp config!(opts) do
    engine_keys = H2Flow.Engine.Options.keys()
    {engine_opts, opts} = Keyword.split(opts, engine_keys)
    {gen_opts, opts} = Keyword.split(opts, [:name])
    {handler, opts} = handler!(opts)
    opts = Keyword.merge(@server_defaults, opts)

    for {key, _} <- opts, not Keyword.has_key?(@server_defaults, key) do
      raise ArgumentError, "unknown option #{inspect(key)}"
    end

    engine = H2Flow.Engine.Options.validate!(engine_opts)
    c = Map.new(opts)
    check!(c.transport in [:tcp, :tls], ":transport must be :tcp or :tls")

    check!(
      match?({_, _, _, _}, c.ip) or match?({_, _, _, _, _, _, _, _}, c.ip),
      ":ip must be an IP tuple"
    )

    check!(is_integer(c.port) and c.port in 0..65_535, ":port must be in 0..65535")
    check!(is_list(c.tls), ":tls must be a keyword list of :ssl options")

    check!(
      c.transport == :tcp or c.tls != [],
      "transport: :tls needs :tls options (a certificate and key)"
    )

    for key <-
          [:acceptors, :max_connections, :backlog, :preface_timeout, :idle_timeout] ++
            [:write_timeout, :shutdown_timeout, :read_buffer] do
      check!(is_integer(c[key]) and c[key] > 0, "#{inspect(key)} must be a positive integer")
    end

    Map.merge(c, %{
      handler: handler,
      engine: engine_opts,
      gen_opts: gen_opts,
      # Connections check their timeouts on this tick: often enough that the shortest one
      # fires within a quarter of its length, at most once a second (it also dates responses).
      tick:
        [c.preface_timeout, c.idle_timeout, engine.settings_timeout]
        |> Enum.min()
        |> div(4)
        |> max(10)
        |> min(1_000),
      stats: nil
    })
  end

  # `:handler` (with `:handler_opts`), or `:plug`, which runs through H2Flow.Plug.Handler.
  defp handler!(opts) do
    case {Keyword.pop(opts, :handler), Keyword.pop(opts, :plug)} do
      {{nil, _}, {nil, _}} ->
        raise ArgumentError, ":handler is required (or :plug, to run a Plug)"

      {{handler, opts}, {nil, _}} ->
        unless is_atom(handler) and Code.ensure_loaded?(handler) and
                 function_exported?(handler, :init, 2) do
          raise ArgumentError,
                ":handler must be a module implementing H2Flow.Handler, got: #{inspect(handler)}"
        end

        {handler, opts}

      {{nil, _}, {plug, opts}} ->
        check!(
          not Keyword.has_key?(opts, :handler_opts),
          ":handler_opts goes with :handler; a plug's options are given as plug: {MyPlug, opts}"
        )

        {H2Flow.Plug.Handler, [{:handler_opts, plug!(plug)} | opts]}

      _ ->
        raise ArgumentError, ":handler and :plug are exclusive: a server runs one or the other"
    end
  end

  # The plug's init/1 runs once, here, as Plug's adapters do.
  defp plug!(plug) do
    {plug, plug_opts} =
      case plug do
        {plug, plug_opts} -> {plug, plug_opts}
        plug -> {plug, []}
      end

    check!(
      Code.ensure_loaded?(Plug.Conn),
      ":plug needs Plug: add it to your application's dependencies"
    )

    check!(
      is_atom(plug) and Code.ensure_loaded?(plug) and function_exported?(plug, :init, 1) and
        function_exported?(plug, :call, 2),
      ":plug must be a module plug (init/1 and call/2) or {module, opts}, got: #{inspect(plug)}"
    )

    {plug, plug.init(plug_opts)}
  end

  defp check!(true, _message), do: :ok
  defp check!(false, message), do: raise(ArgumentError, message)
end
