defmodule H2Flow.Cowboy.StreamHandler do
  @moduledoc """
  h2flow's receive-window scheduling inside a Cowboy 2 server: a `cowboy_stream` handler that
  decides the HTTP/2 WINDOW_UPDATE frames Cowboy sends, with `H2Flow.Scheduler`.

      dispatch = :cowboy_router.compile([{:_, [{"/upload", MyApp.Upload, []}]}])

      opts = H2Flow.Cowboy.StreamHandler.cowboy_opts(%{env: %{dispatch: dispatch}})
      {:ok, _} = :cowboy.start_clear(:http, [port: 8080], opts)

  `cowboy_opts/1` puts this module right before `:cowboy_stream_h` in `:stream_handlers` and
  sets Cowboy's window options to these values, unless the map already has them:

      %{
        initial_connection_window_size: 8_388_608,
        initial_stream_window_size: 4_194_304,
        connection_window_margin_size: 0,
        stream_window_margin_size: 0,
        connection_window_update_threshold: 2_147_483_647
      }

  `initial_connection_window_size` is the bound per connection. With 1 MiB and 256 KiB stream
  windows the bound is tighter and a single large upload slower (more credits, each a write).
  h2flow does not depend on Cowboy: this module is only loaded by an application that has it.
  Handlers read bodies with `:cowboy_req.read_body/2` as usual.

  ## What it does

  One scheduler per connection lives in the connection process (every stream handler of an
  HTTP/2 connection runs there): a NIF resource in its process dictionary, under the key
  `H2Flow.Cowboy.StreamHandler`, holding the scheduler and the mirror of Cowboy's windows
  (`native/h2flow_core/src/cowboy.rs`). Each callback makes one NIF call; the Elixir side only
  dispatches. The handler feeds the scheduler the DATA frames and what the readers take: bytes
  are consumed when a `read_body` finds them buffered or waits for them. The scheduler's rules
  then hold for the connection: no stream credit once a body has arrived, never beyond the
  remaining content-length, credit released at a threshold of the window (half by default) and
  coalesced across streams, at most `initial_connection_window_size` outstanding (the window
  the peer has plus bytes received that no reader asked for), and credit for a waiting reader
  so that no body stalls.

  ## How: a flow command is demand, not credit

  A stream handler cannot write frames. Its lever is the `{flow, n}` command: Cowboy adds `n` to
  the demand of the stream and of the connection, then `cow_http2_machine:ensure_window/4`
  sends a WINDOW_UPDATE at each level whose demand exceeds the window, if that window is not
  above `*_window_update_threshold`, raising it to demand + `*_window_margin_size` (at most
  `max_*_window_size`). DATA lowers demand and window alike. `cowboy_req:read_body/2` becomes
  `{flow, 8_000_000}` by default: Cowboy alone sends a stream (and often a connection)
  WINDOW_UPDATE for most requests whose body has not fully arrived when the handler reads, and
  grants 8 MB per waiting reader whatever the content-length.

  This handler drops those commands and emits its own. It mirrors Cowboy's demand and windows
  (from the Cowboy options it is given; with zero margins exactly), and when the scheduler's
  view of what the peer may send is ahead of Cowboy's, it emits the demand that makes Cowboy
  raise the window to that. One `{flow, n}` moves both levels, so connection credit rides on a
  stream whose own window needs no raise for it: a fresh stream (its window above the stream
  threshold), a stream whose body has arrived, or the window a stream has left. When the peer
  is about to run out of connection window and the current stream cannot carry what the streams
  could use, another stream that can is asked to, by a message through Cowboy
  (`{{pid, stream_id}, msg}`).

  ## What a stream handler cannot do

    * The connection window is raised to `initial_connection_window_size` by Cowboy itself,
      right after its SETTINGS: one WINDOW_UPDATE per connection.
    * When every stream's window already covers its body, no stream can carry connection credit
      without its own window going past its body, and a peer about to run out of connection
      window would stall: the handler then lets one stream's window go past its body (the peer
      cannot use that part: Cowboy enforces the content-length). It happens with a single
      large upload left on a connection, or with the tight windows above.
    * DATA on a stream Cowboy stopped or reset before its body arrived still uses the
      connection window, without any handler seeing it. The handler assumes the worst (that
      stream's window, and for reset streams at most the connection window the peer had) until
      more DATA arrived than the peer could send before it read the RST_STREAM; meanwhile the
      connection window may exceed the bound by that much.
    * With nonzero margins (Cowboy's default 65,535) Cowboy raises a window by at least the
      margin + 1: fewer, larger credits, sometimes past a body by up to the margin. With Cowboy's
      default 65,535-byte connection window, the connection needs a credit per 64 KiB or so.
    * Until Cowboy has the peer's SETTINGS ACK, its window for streams opened before then is
      65,535, and the ACK later adds the rest: the handler counts with the smaller window until
      the peer has sent more than 65,535 bytes, which it can only do after sending the ACK.
    * Cowboy does not count padding against its windows, and an `early_error/5` response does
      not reach the handler's bookkeeping.

  ## Requirements

    * Cowboy 2 over HTTP/2 (HTTP/1.1 and HTTP/3 streams pass through untouched); built and
      tested against Cowboy 2.13 and cowlib 2.14, whose window arithmetic it mirrors.
    * This handler directly before `:cowboy_stream_h`, and no handler before it that rewrites
      request bodies (`:cowboy_decompress_h` would): otherwise streams pass through untouched.

  ## Options

  Under the `:h2flow` key of the Cowboy options, a keyword list:

    * `:window_update_threshold` (default 50): percent of a window at which credit is released.
  """

  # Cowboy is optional: the calls below resolve at run time, in an application that has it.
  # A managed stream's next handler is :cowboy_stream_h, called directly (the state Cowboy keeps
  # for this handler holds its state); other streams go through :cowboy_stream.
  @compile {:no_warn_undefined, [:cowboy_stream, :cowboy_stream_h]}

  alias H2Flow.Native

  # The connection's mirror (a NIF resource) in the connection process's dictionary: an atom key
  # is the cheapest to hash, and every callback reads it.
  @key __MODULE__
  @max_window 2_147_483_647

  @recommended %{
    initial_connection_window_size: 8_388_608,
    initial_stream_window_size: 4_194_304,
    connection_window_margin_size: 0,
    stream_window_margin_size: 0,
    connection_window_update_threshold: @max_window
  }

  @typedoc "The per-stream state Cowboy keeps for this handler."
  @opaque state :: {:managed, term(), reference() | nil} | {:passthrough, term()}

  @doc """
  Cowboy protocol options with this handler before `:cowboy_stream_h` and the recommended
  window options (see the moduledoc); keys already in `opts` win.

      iex> opts = H2Flow.Cowboy.StreamHandler.cowboy_opts(%{initial_stream_window_size: 65_535})
      iex> opts.stream_handlers
      [H2Flow.Cowboy.StreamHandler, :cowboy_stream_h]
      iex> {opts.initial_stream_window_size, opts.stream_window_margin_size}
      {65535, 0}
  """
  @spec cowboy_opts(map()) :: map()
  def cowboy_opts(opts \\ %{}) when is_map(opts) do
    opts = Map.merge(@recommended, opts)
    handlers = List.delete(Map.get(opts, :stream_handlers, [:cowboy_stream_h]), __MODULE__)

    handlers =
      case Enum.split_while(handlers, &(&1 != :cowboy_stream_h)) do
        {before, []} -> before ++ [__MODULE__, :cowboy_stream_h]
        {before, rest} -> before ++ [__MODULE__ | rest]
      end

    Map.put(opts, :stream_handlers, handlers)
  end

  @doc """
  The scheduler counters of a Cowboy connection process (see `H2Flow.Scheduler.info/1`) plus
  what this handler mirrors of Cowboy: `:demand` (the connection's), `:window` and
  `:window_max` (bounds of its connection window: equal when known exactly), `:lingering` (DATA
  of stopped streams that may still arrive) and `:streams`; `nil` when the process has no HTTP/2
  stream handled by this module. A `cowboy_req` request has the connection process as its `pid`.
  """
  @spec connection_info(pid()) :: map() | nil
  def connection_info(pid) when is_pid(pid) do
    with {:dictionary, dict} <- Process.info(pid, :dictionary),
         {_, mirror} <- List.keyfind(dict, @key, 0) do
      Native.cowboy_info(mirror)
    else
      _ -> nil
    end
  end

  ## cowboy_stream callbacks

  @doc false
  @spec init(term(), map(), map()) :: {list(), state()}
  def init(id, req, opts) do
    case {req, opts} do
      {%{version: :"HTTP/2"}, %{stream_handlers: [:cowboy_stream_h | rest]}} ->
        # What :cowboy_stream.init/3 does for the next handler, without its dynamic dispatch.
        {commands, next} = :cowboy_stream_h.init(id, req, %{opts | stream_handlers: rest})
        {body?, length} = body(req)
        {commands, stop?} = split(commands)
        plan = Native.cowboy_open(mirror(opts), id, length, body?, stop?)
        {apply_plan(plan, commands), {:managed, next, nil}}

      _ ->
        {commands, next} = :cowboy_stream.init(id, req, opts)
        {commands, {:passthrough, next}}
    end
  end

  defp body(%{has_body: true, body_length: length}) when is_integer(length), do: {true, length}
  defp body(%{has_body: true}), do: {true, nil}
  defp body(_req), do: {false, nil}

  @doc false
  @spec data(term(), :fin | :nofin, binary(), state()) :: {list(), state()}
  def data(id, fin, data, {:managed, next, ref}) do
    {commands, next} = :cowboy_stream_h.data(id, fin, data, next)
    {commands, stop?} = split(commands)
    plan = Native.cowboy_data(:erlang.get(@key), id, byte_size(data), fin == :fin, stop?)
    {apply_plan(plan, commands), {:managed, next, ref}}
  end

  def data(id, fin, data, {:passthrough, next}) do
    {commands, next} = :cowboy_stream.data(id, fin, data, next)
    {commands, {:passthrough, next}}
  end

  @doc false
  @spec info(term(), term(), state()) :: {list(), state()}
  def info(id, {__MODULE__, :carry}, {:managed, _, _} = state) do
    {apply_plan(Native.cowboy_carry(:erlang.get(@key), id, false), []), state}
  end

  def info(id, msg, {:managed, next, ref}) do
    {commands, next} = :cowboy_stream_h.info(id, msg, next)
    {commands, stop?} = split(commands)
    mirror = :erlang.get(@key)

    # Reads are mirrored (cowboy_stream_h's buffer, the read that waits); a read that waits
    # keeps its reference here, for its `read_body_timeout`.
    {plan, ref} =
      case msg do
        {:read_body, _pid, new_ref, length, _period} ->
          case Native.cowboy_read(mirror, id, if(length == :auto, do: nil, else: length), stop?) do
            {:waiting, plan} -> {plan, new_ref}
            plan -> {plan, ref}
          end

        {:read_body_timeout, ^ref} when ref != nil ->
          {Native.cowboy_read_timeout(mirror, id, stop?), ref}

        _ ->
          {Native.cowboy_info_other(mirror, id, stop?), ref}
      end

    {apply_plan(plan, commands), {:managed, next, ref}}
  end

  def info(id, msg, {:passthrough, next}) do
    {commands, next} = :cowboy_stream.info(id, msg, next)
    {commands, {:passthrough, next}}
  end

  @doc false
  @spec terminate(term(), term(), state()) :: term()
  def terminate(id, reason, {:managed, next, _ref}) do
    # The peer reset the stream when `reason` is the bare error code.
    peer_reset? = is_atom(reason) and reason not in [:normal, :switch_protocol]

    case Native.cowboy_terminate(:erlang.get(@key), id, peer_reset?) do
      nil -> :ok
      carrier -> ask(carrier)
    end

    _ = :cowboy_stream_h.terminate(id, reason, next)
    :ok
  end

  def terminate(id, reason, {:passthrough, next}), do: :cowboy_stream.terminate(id, reason, next)

  @doc false
  @spec early_error(term(), term(), map(), tuple(), map()) :: tuple()
  def early_error(id, reason, partial_req, resp, opts),
    do: :cowboy_stream.early_error(id, reason, partial_req, resp, opts)

  ## The connection's mirror

  defp mirror(opts) do
    case :erlang.get(@key) do
      :undefined ->
        {:ok, mirror} = new_mirror(opts)
        :erlang.put(@key, mirror)
        mirror

      mirror ->
        mirror
    end
  end

  defp new_mirror(opts) do
    case Native.cowboy_new(%{
           initial_connection_window_size: Map.get(opts, :initial_connection_window_size, 65_535),
           initial_stream_window_size: Map.get(opts, :initial_stream_window_size, 65_535),
           max_frame_size_received: Map.get(opts, :max_frame_size_received, 16_384),
           connection: params(opts, :connection, 163_840),
           stream: params(opts, :stream, 163_840),
           window_update_threshold: threshold(Map.get(opts, :h2flow, []))
         }) do
      {:ok, mirror} -> {:ok, mirror}
      {:error, message} -> raise ArgumentError, "H2Flow.Cowboy.StreamHandler: #{message}"
    end
  end

  defp threshold(h2flow_opts) do
    Enum.reduce(h2flow_opts, 50, fn
      {:window_update_threshold, t}, _ when is_integer(t) and t in 1..100 -> t
      other, _ -> raise ArgumentError, "invalid :h2flow option #{inspect(other)}"
    end)
  end

  # {margin, threshold, max} of one level, Cowboy's defaults when unset.
  defp params(opts, level, default_threshold) do
    {Map.get(opts, :"#{level}_window_margin_size", 65_535),
     Map.get(opts, :"#{level}_window_update_threshold", default_threshold),
     Map.get(opts, :"max_#{level}_window_size", @max_window)}
  end

  ## Commands

  # The flow commands of the handlers after this one are dropped (demand is decided by the
  # mirror), and a `stop` ends what the stream receives. Most command lists have neither.
  defp split(commands) do
    if plain?(commands), do: {commands, false}, else: without_flow(commands, [], false)
  end

  defp plain?([]), do: true
  defp plain?([{:flow, _} | _]), do: false
  defp plain?([:stop | _]), do: false
  defp plain?([_ | rest]), do: plain?(rest)

  defp without_flow([], acc, stop?), do: {:lists.reverse(acc), stop?}
  defp without_flow([{:flow, _} | rest], acc, stop?), do: without_flow(rest, acc, stop?)
  defp without_flow([:stop | rest], acc, _), do: without_flow(rest, [:stop | acc], true)
  defp without_flow([command | rest], acc, stop?), do: without_flow(rest, [command | acc], stop?)

  # The mirror's plan: a demand to add (none when 0), and maybe a stream to ask to carry
  # connection credit, by a message to this process that Cowboy routes to that stream's info/3.
  defp apply_plan(0, commands), do: commands
  defp apply_plan(n, commands) when is_integer(n), do: [{:flow, n} | commands]

  defp apply_plan({n, carrier}, commands) do
    ask(carrier)
    apply_plan(n, commands)
  end

  defp ask(carrier), do: send(self(), {{self(), carrier}, {__MODULE__, :carry}})
end
