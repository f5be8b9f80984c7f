defmodule H2Flow.Config do
  @moduledoc false
  # Validates H2Flow.start_link/1's options (documented in H2Flow) and builds the configuration
  # every process of a server shares. A wrong option raises ArgumentError naming the option,
  # the value given and what is expected; an unknown one lists the valid keys.

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
    shutdown_timeout: 15_000,
    read_buffer: 262_144,
    telemetry_metadata: %{},
    startup_log: false,
    http_versions: [:http1, :http2]
  ]

  @log_levels [:emergency, :alert, :critical, :error, :warning, :notice, :info, :debug]

  @doc false
  def defaults, do: @server_defaults

  @doc false
  def keys,
    do:
      [:handler, :plug, :name] ++
        Keyword.keys(@server_defaults) ++
        H2Flow.Engine.Options.keys() ++ H2Flow.HTTP1.Engine.server_keys()

  @doc "The configuration for `opts`; raises `ArgumentError` on a wrong or unknown option."
  def build!(opts) do
    engine_keys = H2Flow.Engine.Options.keys()
    {engine_opts, opts} = Keyword.split(opts, engine_keys)
    {http1_opts, opts} = Keyword.split(opts, H2Flow.HTTP1.Engine.server_keys())
    {gen_opts, opts} = Keyword.split(opts, [:name])
    {handler, opts} = handler!(opts)
    opts = Keyword.merge(@server_defaults, opts)

    for {key, _} <- opts, not Keyword.has_key?(@server_defaults, key) do
      raise ArgumentError,
            "unknown option #{inspect(key)}; the options are: " <>
              Enum.map_join(keys(), ", ", &inspect/1)
    end

    engine = H2Flow.Engine.Options.validate!(engine_opts)
    c = Map.new(opts)
    check!(c, :transport, c.transport in [:tcp, :tls], ":tcp or :tls")

    check!(
      c,
      :ip,
      match?({_, _, _, _}, c.ip) or match?({_, _, _, _, _, _, _, _}, c.ip),
      "an IP address tuple"
    )

    check!(c, :port, is_integer(c.port) and c.port in 0..65_535, "an integer in 0..65535")
    check!(c, :tls, Keyword.keyword?(c.tls), "a keyword list of :ssl options")

    check!(
      c,
      :tls,
      c.transport == :tcp or c.tls != [],
      "a certificate and key (transport: :tls needs :tls options)"
    )

    for key <-
          [:acceptors, :max_connections, :backlog, :preface_timeout] ++
            [:write_timeout, :shutdown_timeout, :read_buffer] do
      check!(c, key, is_integer(c[key]) and c[key] > 0, "a positive integer")
    end

    check!(
      c,
      :idle_timeout,
      c.idle_timeout == :infinity or (is_integer(c.idle_timeout) and c.idle_timeout > 0),
      "a positive integer (milliseconds) or :infinity"
    )

    check!(c, :telemetry_metadata, is_map(c.telemetry_metadata), "a map")

    check!(
      c,
      :http_versions,
      is_list(c.http_versions) and c.http_versions != [] and
        Enum.all?(c.http_versions, &(&1 in [:http1, :http2])) and
        Enum.uniq(c.http_versions) == c.http_versions,
      "a non-empty list of :http1 and :http2"
    )

    http1 =
      H2Flow.HTTP1.Engine.config(http1_opts, %{
        idle_timeout: c.idle_timeout,
        max_send_queue: engine.max_send_queue,
        transport: c.transport
      })

    # No upgrade to a version the server does not serve.
    http1 = %{http1 | h2c_upgrade: http1.h2c_upgrade and :http2 in c.http_versions}

    check!(
      c,
      :startup_log,
      c.startup_log == false or c.startup_log in @log_levels,
      "false or a Logger level"
    )

    Map.merge(c, %{
      handler: handler,
      engine: engine_opts,
      # The HTTP/1.1 engine's configuration, complete (H2Flow.HTTP1.Engine.config/2).
      http1: http1,
      gen_opts: gen_opts,
      # Connections check their timeouts on this tick: often enough that the shortest one
      # fires within a quarter of its length, at most once a second (it also dates responses).
      tick:
        [c.preface_timeout, c.idle_timeout, engine.settings_timeout, http1.header_timeout]
        |> Enum.filter(&is_integer/1)
        |> Enum.min()
        |> div(4)
        |> max(10)
        |> min(1_000),
      # Set by H2Flow.Server when it starts.
      counters: nil,
      telemetry: false
    })
  end

  # `:handler` (with `:handler_opts`), or `:plug`, which runs through H2Flow.Plug.Handler.
  defp handler!(opts) do
    case {Keyword.pop(opts, :handler), Keyword.pop(opts, :plug)} do
      {{nil, _}, {nil, _}} ->
        raise ArgumentError, ":handler is required (or :plug, to run a Plug)"

      {{handler, opts}, {nil, _}} ->
        module!(:handler, handler, init: 2)
        {handler, opts}

      {{nil, _}, {plug, opts}} ->
        if Keyword.has_key?(opts, :handler_opts) do
          raise ArgumentError,
                ":handler_opts goes with :handler; a plug's options are given as " <>
                  "plug: {MyPlug, opts}"
        end

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

    unless Code.ensure_loaded?(Plug.Conn) do
      raise ArgumentError, ":plug needs Plug: add it to your application's dependencies"
    end

    module!(:plug, plug, init: 1, call: 2)
    {plug, plug.init(plug_opts)}
  end

  # A module that exists and exports `functions`, else an error that says which of the two.
  defp module!(option, module, functions) do
    what =
      case option do
        :handler -> ":handler must be a module implementing H2Flow.Handler (init/2)"
        :plug -> ":plug must be a module plug (init/1 and call/2) or {module, opts}"
      end

    cond do
      not is_atom(module) or module in [nil, true, false] ->
        raise ArgumentError, "#{what}, got: #{inspect(module)}"

      not Code.ensure_loaded?(module) ->
        raise ArgumentError,
              "#{what}: module #{inspect(module)} is not available (not compiled, or not in " <>
                "the code path)"

      true ->
        missing = Enum.reject(functions, fn {f, a} -> function_exported?(module, f, a) end)

        if missing != [] do
          raise ArgumentError,
                "#{what}: #{inspect(module)} does not export " <>
                  Enum.map_join(missing, " and ", fn {f, a} -> "#{f}/#{a}" end)
        end
    end
  end

  defp check!(_c, _key, true, _expected), do: :ok

  # The :tls options may hold a private key: their value is never shown.
  defp check!(_c, :tls, false, expected),
    do: raise(ArgumentError, ":tls must be #{expected}")

  defp check!(c, key, false, expected) do
    raise ArgumentError,
          "#{inspect(key)} must be #{expected}, got: #{inspect(Map.fetch!(c, key), limit: 10)}"
  end
end
