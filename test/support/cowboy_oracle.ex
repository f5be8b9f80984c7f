defmodule H2Flow.Test.CowboyOracle do
  @moduledoc false
  # The Elixir implementation of H2Flow.Cowboy.StreamHandler's mirror of Cowboy's windows, as it
  # was before that mirror moved to Rust (native/h2flow_core/src/cowboy.rs): the oracle that
  # test/h2flow/cowboy_mirror_test.exs compares the NIF with, callback by callback. Changed
  # only where the choice was arbitrary: a carrier is the lowest stream id that qualifies
  # (the Rust mirror's rule), not the first in process-dictionary order.

  # Cowboy is optional: the calls below resolve at run time, in an application that has it.
  # The connection's state lives in its process dictionary (:erlang.get/put: these callbacks
  # run several times per request).
  @compile {:no_warn_undefined, [:cowboy_stream]}

  alias H2Flow.Scheduler

  # Process dictionary keys: the connection's state under this module's name, each stream's
  # under an integer below `@stream_key` (`@stream_key - stream_id`). Atoms and small integers
  # are the keys the process dictionary hashes cheaply; these callbacks run several times per
  # request.
  @key __MODULE__
  @stream_key -0x6F7261 * 0x1_0000_0000
  @max_window 2_147_483_647

  @typedoc "The per-stream state Cowboy keeps for this handler."
  @opaque state :: {:managed | :passthrough, term()}

  @doc false
  @spec connection_info(pid()) :: map() | nil
  def connection_info(pid) when is_pid(pid) do
    with {:dictionary, dict} <- Process.info(pid, :dictionary),
         {_, conn} <- List.keyfind(dict, @key, 0) do
      streams = Enum.count(dict, fn {key, _} -> stream_key?(key) end)

      conn.sched
      |> Scheduler.info()
      |> Map.merge(%{
        window: conn.window,
        window_max: conn.window_max,
        lingering: lingering(conn),
        demand: conn.flow,
        streams: streams
      })
    else
      _ -> nil
    end
  end

  ## cowboy_stream callbacks

  @doc false
  @spec init(term(), map(), map()) :: {list(), state()}
  def init(id, req, opts) do
    {commands, next} = :cowboy_stream.init(id, req, opts)

    if Map.get(req, :version) == :"HTTP/2" and
         match?([:cowboy_stream_h | _], opts[:stream_handlers]) do
      conn = open(connection(opts), id, req)
      {commands, conn} = plan(conn, id, commands, :info)
      :erlang.put(@key, conn)
      {commands, {:managed, next}}
    else
      {commands, {:passthrough, next}}
    end
  end

  @doc false
  @spec data(term(), :fin | :nofin, binary(), state()) :: {list(), state()}
  def data(id, fin, data, {:managed, next}) do
    conn = received(:erlang.get(@key), id, byte_size(data), fin == :fin)
    {commands, next} = :cowboy_stream.data(id, fin, data, next)
    {commands, conn} = plan(conn, id, commands, :data)
    :erlang.put(@key, conn)
    {commands, {:managed, next}}
  end

  def data(id, fin, data, {:passthrough, next}) do
    {commands, next} = :cowboy_stream.data(id, fin, data, next)
    {commands, {:passthrough, next}}
  end

  @doc false
  @spec info(term(), term(), state()) :: {list(), state()}
  def info(id, {__MODULE__, :carry}, {:managed, _} = state) do
    conn = %{:erlang.get(@key) | carrier: nil}
    {commands, conn} = plan(conn, id, [], :carry)
    :erlang.put(@key, conn)
    {commands, state}
  end

  def info(id, msg, {:managed, next}) do
    old = :erlang.get(@key)

    conn =
      if is_tuple(msg) and elem(msg, 0) in [:read_body, :read_body_timeout],
        do: update_stream(old, id, &read_body(&1, id, &2, msg)),
        else: old

    {commands, next} = :cowboy_stream.info(id, msg, next)
    {commands, conn} = plan(conn, id, commands, :info)
    # Most messages change nothing here (the same term: a pointer comparison).
    if conn !== old, do: :erlang.put(@key, conn)
    {commands, {:managed, next}}
  end

  def info(id, msg, {:passthrough, next}) do
    {commands, next} = :cowboy_stream.info(id, msg, next)
    {commands, {:passthrough, next}}
  end

  @doc false
  @spec terminate(term(), term(), state()) :: term()
  def terminate(id, reason, {mode, next}) do
    if mode == :managed, do: :erlang.put(@key, terminated(:erlang.get(@key), id, reason))
    :cowboy_stream.terminate(id, reason, next)
  end

  @doc false
  @spec early_error(term(), term(), map(), tuple(), map()) :: tuple()
  def early_error(id, reason, partial_req, resp, opts),
    do: :cowboy_stream.early_error(id, reason, partial_req, resp, opts)

  ## The connection: scheduler, Cowboy's demand and windows

  defp connection(opts) do
    case :erlang.get(@key) do
      :undefined -> new_connection(opts)
      conn -> conn
    end
  end

  defp new_connection(opts) do
    window = Map.get(opts, :initial_connection_window_size, 65_535)
    stream_window = Map.get(opts, :initial_stream_window_size, 65_535)

    {:ok, sched} =
      Scheduler.new(
        initial_connection_window: window,
        peer_initial_connection_window: window,
        initial_stream_window: stream_window,
        max_frame_size: Map.get(opts, :max_frame_size_received, 16_384),
        window_update_threshold: threshold(Map.get(opts, :h2flow, []))
      )

    %{
      sched: sched,
      # Cowboy's connection demand (`flow`). cow_http2_machine's connection window is known
      # within bounds: `window` is at most that window plus the DATA of stopped streams that
      # arrived since (no handler sees it; `lingering` lists what may still come and
      # lingering/1 bounds it), `window_max` at least that window. Without lingering DATA and
      # with equal bounds it is exact.
      flow: 0,
      window: window,
      window_max: window,
      lingering: [],
      lingering_total: 0,
      # What the scheduler lets the peer send (its view, from its credits); scheduler events
      # not flushed yet.
      remaining: window,
      dirty: false,
      stream_window: stream_window,
      # Streams opened before the peer's SETTINGS ACK reached Cowboy have a window of 65,535 in
      # cow_http2_machine until it does, then the advertised one. The peer can send more than
      # 65,535 bytes only with a WINDOW_UPDATE that Cowboy wrote after its SETTINGS, so once
      # the connection received that much, the ACK has arrived (`received`, `acked`).
      received: 0,
      acked: stream_window <= 65_535,
      max_frame_size: Map.get(opts, :max_frame_size_received, 16_384),
      conn_params: params(opts, :connection, 163_840),
      stream_params: params(opts, :stream, 163_840),
      carrier: nil,
      coverage: 0
    }
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

  defp open(conn, id, req) do
    length = Map.get(req, :body_length)
    length = if is_integer(length), do: length
    body? = Map.get(req, :has_body, false)
    # A stream without a body is not tracked by the scheduler: nothing to tell it.
    if body?, do: :ok = Scheduler.open_stream(conn.sched, id, length, false)

    stream = %{
      # Cowboy's demand for the stream, cow_http2_machine's window, the scheduler's view.
      flow: 0,
      window: conn.stream_window,
      remaining: conn.stream_window,
      # Body bytes still to come when the length is known; the peer may still send DATA.
      expected: if(body?, do: length, else: 0),
      receiving: body?,
      # Bytes received, fed to the scheduler and not yet taken by a reader.
      fed: 0,
      # cowboy_stream_h's read buffer, its end-of-body flag and the read that waits, mirrored.
      buffer: 0,
      buffer_fin: false,
      waiting: nil,
      # The handler stopped: Cowboy ends the stream once the response is out.
      stopped: false,
      # Opened before Cowboy may have had the SETTINGS ACK: its window there may be smaller.
      early: not conn.acked
    }

    put_stream(conn, id, get_stream(id), stream)
  end

  # The streams live in the process dictionary too, one entry each (see `@stream_key`). A stream
  # handler callback reads and writes its own stream; only the rare search for a stream to carry
  # connection credit walks them all (`streams/0`).
  defp get_stream(id), do: :erlang.get(@stream_key - id)

  defp streams do
    Enum.sort(for {key, s} <- :erlang.get(), stream_key?(key), do: {@stream_key - key, s})
  end

  defp stream_key?(key),
    do: is_integer(key) and key < @stream_key and key >= @stream_key - 0x7FFF_FFFF

  defp update_stream(conn, id, fun) do
    case get_stream(id) do
      :undefined -> conn
      stream -> fun.(conn, stream)
    end
  end

  # Every change of a stream goes through here, which keeps `coverage` (what the peer could send
  # on the streams, their windows and bodies permitting) without walking them all.
  defp put_stream(conn, id, old, stream) do
    :erlang.put(@stream_key - id, stream)

    case cover(stream) - cover(old) do
      0 -> conn
      delta -> %{conn | coverage: conn.coverage + delta}
    end
  end

  defp cover(%{receiving: true} = s), do: max(0, min(s.window, s.expected || s.window))
  defp cover(_), do: 0

  ## Events

  # A DATA frame: Cowboy lowers both demands (not below 0) and cow_http2_machine both windows.
  # The scheduler refuses DATA beyond its view of the windows: what Cowboy granted beyond it
  # is not fed to it (and not counted twice).
  defp received(conn, id, size, fin?) do
    case get_stream(id) do
      :undefined ->
        conn

      old ->
        s = old
        fed = size |> min(max(conn.remaining, 0)) |> min(max(s.remaining, 0))
        {s, taken?} = mirror_data(s, size, fin?)
        consumed = if taken?, do: s.fed + fed

        {_, credits} = Scheduler.data_and_flush(conn.sched, id, fed, fin?, consumed)

        s = %{
          s
          | flow: max(0, s.flow - size),
            window: s.window - size,
            remaining: s.remaining - fed,
            expected: s.expected && max(0, s.expected - size),
            receiving: s.receiving and not fin?,
            fed: if(taken?, do: 0, else: s.fed + fed)
        }

        received = conn.received + size
        conn = expire_lingering(conn, size)

        conn = %{
          conn
          | received: received,
            acked: conn.acked or received > 65_535,
            flow: max(0, conn.flow - size),
            window: conn.window - size,
            window_max: conn.window_max - size,
            remaining: conn.remaining - fed
        }

        conn |> put_stream(id, old, s) |> credited(credits)
    end
  end

  # cowboy_stream_h's data/4: a waiting read takes the bytes (`true`); otherwise they are
  # buffered.
  defp mirror_data(%{waiting: nil} = s, size, fin?),
    do: {%{s | buffer: s.buffer + size, buffer_fin: fin?}, false}

  defp mirror_data(%{waiting: :auto} = s, _size, _fin?), do: {%{s | waiting: nil}, true}

  defp mirror_data(%{waiting: {length, _}} = s, size, fin?) do
    if not fin? and s.buffer + size < length,
      do: {%{s | buffer: s.buffer + size}, true},
      else: {%{s | buffer: 0, waiting: nil}, true}
  end

  # cowboy_stream_h's info/3 for cowboy_req's read_body messages: what is buffered goes to the
  # reader now or is kept for it, so it is consumed either way, and a read that cannot be
  # answered waits (Cowboy's auto mode: only when nothing is buffered).
  defp read_body(conn, id, old, {:read_body, _pid, ref, length, _period}) do
    credits = Scheduler.consume_and_flush(conn.sched, id, old.fed)
    s = %{old | fed: 0}

    s =
      cond do
        length == :auto and s.buffer == 0 -> %{s | waiting: :auto}
        length == :auto -> %{s | buffer: 0}
        s.buffer_fin or s.buffer >= length -> %{s | buffer: 0}
        true -> %{s | waiting: {length, ref}}
      end

    conn |> put_stream(id, old, s) |> credited(credits)
  end

  defp read_body(conn, id, %{waiting: {_, ref}} = s, {:read_body_timeout, ref}),
    do: put_stream(conn, id, s, %{s | buffer: 0, waiting: nil})

  defp read_body(conn, _id, _s, _msg), do: conn

  # The stream will get no more DATA that any handler sees: the handler stopped (Cowboy then
  # ignores the stream's DATA), or it was reset. Unless the peer reset it, cow_http2_machine
  # still charges what the peer sends on it to the connection window, up to the stream's
  # window: that much is set aside (`lingering`) until it has surely arrived.
  defp stop_receiving(conn, id, peer_reset?) do
    update_stream(conn, id, fn conn, s ->
      # The scheduler no longer tracks a stream that has nothing left to receive or to consume.
      released? = s.receiving or s.fed > 0
      if released?, do: :ok = Scheduler.close_stream(conn.sched, id)

      conn =
        case s.receiving and not peer_reset? and max(0, min(s.window, s.expected || s.window)) do
          amount when is_integer(amount) and amount > 0 ->
            %{
              conn
              | lingering: [%{id: id, amount: amount, headroom: nil} | conn.lingering],
                lingering_total: conn.lingering_total + amount
            }

          _ ->
            conn
        end

      stopped = %{s | receiving: false, expected: 0, fed: 0, waiting: nil, stopped: true}
      put_stream(%{conn | dirty: conn.dirty or released?}, id, s, stopped)
    end)
  end

  # Cowboy subtracts a terminated stream's demand from the connection's, except when the peer
  # reset the stream (`reason` is then the bare error code). Cowboy resets a stream whose body
  # has not fully arrived: from now on, the peer can send on it only what it sent before it
  # read the RST_STREAM, which is at most its connection window now (`window_max`).
  defp terminated(conn, id, reason) do
    peer_reset? = is_atom(reason) and reason not in [:normal, :switch_protocol]

    conn =
      case get_stream(id) do
        %{stopped: true} -> conn
        _ -> stop_receiving(conn, id, peer_reset?)
      end

    conn = reset_lingering(conn, id)

    case :erlang.erase(@stream_key - id) do
      :undefined ->
        conn

      s ->
        flow = if peer_reset?, do: conn.flow, else: conn.flow - s.flow
        conn = %{conn | flow: flow, coverage: conn.coverage - cover(s)}
        if conn.carrier == id, do: ask_again(%{conn | carrier: nil}), else: conn
    end
  end

  defp reset_lingering(%{lingering: []} = conn, _id), do: conn

  defp reset_lingering(conn, id) do
    {lingering, total} =
      Enum.map_reduce(conn.lingering, 0, fn
        %{id: ^id} = l, total ->
          amount = min(l.amount, max(conn.window_max, 0))
          {%{l | headroom: conn.window_max, amount: amount}, total + amount}

        l, total ->
          {l, total + l.amount}
      end)

    %{conn | lingering: lingering, lingering_total: total}
  end

  # The stream asked to carry connection credit ended first (Cowboy drops the message): another
  # stream still receiving is asked, so that a starving peer is not left waiting.
  defp ask_again(conn) do
    case Enum.find(streams(), fn {_, s} -> s.receiving end) do
      {other, _} -> ask(conn, other)
      nil -> conn
    end
  end

  # More visible DATA than the peer had window when a stream was reset can only have been sent
  # with credit that went out after the RST_STREAM, so after the peer read it: everything it
  # sent on that stream has arrived before (one TCP stream, in order).
  defp expire_lingering(%{lingering: []} = conn, _size), do: conn

  defp expire_lingering(conn, size) do
    {gone, kept} =
      conn.lingering
      |> Enum.map(fn
        %{headroom: nil} = l -> l
        l -> %{l | headroom: l.headroom - size}
      end)
      |> Enum.split_with(&(&1.headroom != nil and &1.headroom < 0))

    # What arrived of it is no longer to come but has lowered the window: at most all of it.
    gone = Enum.sum(Enum.map(gone, & &1.amount))

    %{
      conn
      | lingering: kept,
        lingering_total: conn.lingering_total - gone,
        window: conn.window - gone
    }
  end

  ## Commands

  # The flow commands of the handlers after this one are dropped: demand is decided here.
  defp plan(conn, id, commands, event) do
    {commands, stop?} =
      if plain?(commands), do: {commands, false}, else: without_flow(commands, [], false)

    conn = if stop?, do: stop_receiving(conn, id, false), else: conn
    conn = if conn.dirty, do: flush(conn), else: conn

    case realize(conn, id, event) do
      {0, conn} -> {commands, conn}
      {n, conn} -> {[{:flow, n} | commands], conn}
    end
  end

  defp flush(conn), do: credited(%{conn | dirty: false}, Scheduler.flush(conn.sched))

  defp plain?([]), do: true
  defp plain?([{:flow, _} | _]), do: false
  defp plain?([:stop | _]), do: false
  defp plain?([_ | rest]), do: plain?(rest)

  defp without_flow([], acc, stop?), do: {:lists.reverse(acc), stop?}
  defp without_flow([{:flow, _} | rest], acc, stop?), do: without_flow(rest, acc, stop?)
  defp without_flow([:stop | rest], acc, _), do: without_flow(rest, [:stop | acc], true)
  defp without_flow([command | rest], acc, stop?), do: without_flow(rest, [command | acc], stop?)

  # The scheduler's credits raise its view of what the peer may send.
  defp credited(conn, []), do: conn

  defp credited(conn, credits) do
    Enum.reduce(credits, conn, fn
      {0, credit}, conn ->
        %{conn | remaining: conn.remaining + credit}

      {id, credit}, conn ->
        update_stream(conn, id, &put_stream(&1, id, &2, %{&2 | remaining: &2.remaining + credit}))
    end)
  end

  # The demand to emit on stream `id` so that Cowboy's windows reach the scheduler's view of what
  # the peer may send: the stream's own credit, and the connection's when this stream can carry
  # it without raising its own window (see carry_short/5 otherwise).
  defp realize(conn, id, event) do
    case get_stream(id) do
      # Nothing owed, and Cowboy's demands within its windows: no WINDOW_UPDATE, now or at the
      # check after this DATA frame. The common case for DATA frames.
      %{remaining: r, window: w, flow: f}
      when conn.lingering_total == 0 and conn.remaining <= conn.window and r <= w and f <= w and
             conn.flow <= conn.window ->
        {0, conn}

      %{} = s ->
        # Bytes beyond the scheduler's view were not fed to it: it may count them as body still
        # to come, so its view is capped at the body that is really still to come.
        target = if s.expected, do: min(s.remaining, s.expected), else: s.remaining

        # Before the SETTINGS ACK the peer cannot have used the stream's window up (it can have
        # sent 65,535 bytes in all), and a raise then would be raised again by the ACK.
        stream_n =
          if s.receiving and target > s.window and machine_window(s, conn) == s.window,
            do: least_demand(s.flow, s.window, target - s.window, conn.stream_params),
            else: nil

        conn_n = connection_demand(conn)

        base = stream_n || 0

        {n, conn} =
          cond do
            conn_n == nil ->
              {base, conn}

            base >= conn_n or compare(free_demand(s, conn), conn_n) != :lt ->
              {max(base, conn_n), conn}

            true ->
              carry_short(conn, id, s, event, base)
          end

        {n, demand(conn, id, s, n, event)}

      _ ->
        {0, conn}
    end
  end

  # This stream cannot carry the whole connection credit without raising its own window: it
  # waits for a stream that can (a fresh one, one that stops) or for the next stream credit,
  # which carries connection credit with it. But when the peer is about to run out of
  # connection window while the streams could take more (`coverage`), that much goes out now:
  # raising this stream's window within its body, or asking a stream that can (by a message to
  # itself), or else as much as this stream's body allows, or past this stream's body when it
  # allows nothing. That last is the only way to move Cowboy's connection window when every
  # stream's window already covers its body; the peer cannot use the extra (Cowboy enforces
  # the content-length).
  defp carry_short(conn, id, s, event, base) do
    need_n =
      if conn.window - lingering(conn) < conn.max_frame_size,
        do: connection_demand(conn, min(conn.remaining, conn.coverage))

    cond do
      need_n in [nil, 0] ->
        {base, conn}

      compare(most_demand(s, conn), need_n) != :lt ->
        {max(base, need_n), conn}

      conn.carrier != nil ->
        {base, conn}

      true ->
        case event != :carry and carrier(conn, id, need_n) do
          other when is_integer(other) ->
            {base, ask(conn, other)}

          # Part of it within this stream's body, if that surely gives the peer a frame: it can
          # send, and the callbacks that follow carry the rest.
          _ ->
            most = most_demand(s, conn)

            if sure_credit(conn, most) >= conn.max_frame_size,
              do: {max(base, most), conn},
              else: {max(base, need_n), conn}
        end
    end
  end

  # A stream whose handler still runs that can take demand `n` without raising its window, or
  # else one still receiving that can take it within its body.
  defp carrier(conn, id, n) do
    streams = streams()

    Enum.find_value(streams, fn {other, s} ->
      if other != id and not s.stopped and compare(free_demand(s, conn), n) != :lt, do: other
    end) ||
      Enum.find_value(streams, fn {other, s} ->
        if other != id and s.receiving and compare(most_demand(s, conn), n) != :lt, do: other
      end)
  end

  defp ask(conn, carrier) do
    send(self(), {{self(), carrier}, {__MODULE__, :carry}})
    %{conn | carrier: carrier}
  end

  # The connection credit a demand of `n` gives for sure, whatever cow_http2_machine's window
  # within its bounds.
  defp sure_credit(conn, n) do
    if exact?(conn),
      do: increment(conn.flow + n, conn.window, conn.conn_params),
      else: max(0, conn.flow + n - conn.window_max)
  end

  defp compare(:infinity, _), do: :gt
  defp compare(a, b) when a < b, do: :lt
  defp compare(_, _), do: :gt

  # The least demand that gives the peer the scheduler's connection window: exactly, when the
  # window is known; otherwise a demand that covers it and the lingering DATA whatever the
  # window is (cow_http2_machine raises its window to at least the demand).
  defp connection_demand(conn, target \\ nil) do
    target = target || conn.remaining
    lingering = lingering(conn)
    owed = target - (conn.window - lingering)

    cond do
      owed <= 0 -> nil
      exact?(conn) -> least_demand(conn.flow, conn.window, owed, conn.conn_params)
      true -> max(1, target + lingering - conn.flow)
    end
  end

  defp exact?(conn), do: conn.lingering_total == 0 and conn.window == conn.window_max

  # The most DATA still to come on stopped streams: up to each one's window, and on those Cowboy
  # already reset, what the peer sent before it read the RST_STREAM, so at most its connection
  # window now (credit written after the RST_STREAM reaches it after it).
  defp lingering(%{lingering_total: 0}), do: 0

  defp lingering(conn) do
    {reset, stopping} =
      Enum.reduce(conn.lingering, {0, 0}, fn
        %{headroom: nil, amount: a}, {r, s} -> {r, s + a}
        %{amount: a}, {r, s} -> {r + a, s}
      end)

    min(reset, max(conn.window_max, 0)) + stopping
  end

  # Applies a demand of `n` as Cowboy will: both levels are checked after a flow command, and
  # after a DATA frame that brought none.
  # Cowboy's check after a DATA frame finds both demands within the windows (known exactly):
  # nothing happens.
  defp demand(%{flow: f, window: w, window_max: w, lingering_total: 0} = conn, _id, s, 0, :data)
       when f <= w and s.flow <= s.window,
       do: conn

  defp demand(conn, id, s, n, event) when n > 0 or event == :data do
    flow = conn.flow + n
    s_flow = s.flow + n
    stream_inc = increment(s_flow, s.window, conn.stream_params)

    conn = connection_checked(%{conn | flow: flow})
    put_stream(conn, id, s, %{s | flow: s_flow, window: s.window + stream_inc})
  end

  defp demand(conn, _id, _s, _n, _event), do: conn

  # The most demand this stream can take without Cowboy ever raising its window past its
  # remaining body. DATA lowers demand and window alike, so demand within the window never
  # raises it (`free_demand/2`); beyond it, cow_http2_machine raises the window to demand +
  # margin as soon as the window is at most the threshold, now or after more DATA.
  defp most_demand(s, conn) do
    {margin, _threshold, _max} = conn.stream_params
    free = free_demand(s, conn)

    # Before the SETTINGS ACK, what cow_http2_machine raises the window to, the ACK raises again.
    early = s.window - machine_window(s, conn)

    cond do
      free == :infinity -> :infinity
      not s.receiving -> free
      s.expected == nil -> :infinity
      true -> max(free, s.expected - margin - early - s.flow)
    end
  end

  # The demand this stream can take without Cowboy raising its window at all, now or later:
  # within its window, or any once no DATA will lower a window above the threshold.
  defp free_demand(s, conn) do
    {_margin, threshold, _max} = conn.stream_params
    window = machine_window(s, conn)

    if not s.receiving and window > threshold,
      do: :infinity,
      else: max(window - s.flow, 0)
  end

  # cow_http2_machine's window for the stream: smaller until the SETTINGS ACK for an early one.
  defp machine_window(%{early: true} = s, %{acked: false} = conn),
    do: s.window - (conn.stream_window - 65_535)

  defp machine_window(s, _conn), do: s.window

  # cow_http2_machine checked the connection window against the demand.
  defp connection_checked(conn) do
    {margin, threshold, max} = conn.conn_params
    demand = conn.flow

    if exact?(conn) do
      window = conn.window + increment(demand, conn.window, conn.conn_params)
      %{conn | window: window, window_max: window}
    else
      raised = if demand > 0, do: min(demand + margin, max), else: 0
      # Its window was at most `window_max`: if that is below the demand, it was raised.
      certain? = demand > conn.window_max and conn.window_max <= threshold and demand > 0
      floor = if certain?, do: raised, else: Enum.min([demand, threshold + 1, max])

      window_max = max(conn.window_max, raised)

      if certain? and conn.lingering_total == 0,
        do: %{conn | window: raised, window_max: raised},
        else: %{
          conn
          | window: max(conn.window, floor),
            window_max: window_max
        }
    end
  end

  ## Cowboy 2.13's window arithmetic (cow_http2_machine:ensure_window/4)

  # The WINDOW_UPDATE increment a demand of `size` yields on `window`.
  defp increment(size, window, {margin, threshold, max}) do
    cond do
      size == 0 or size <= window or window > threshold -> 0
      size + margin > max -> max(max - window, 0)
      true -> size + margin - window
    end
  end

  # The least extra demand that raises `window` by at least `want` (as much as the maximum
  # allows): 0 when the demand already does (cow_http2_machine acts on it at the next check,
  # every DATA frame being one), nil when the window is above the threshold.
  defp least_demand(demand, window, want, {margin, threshold, max} = params) do
    want = min(want, max - window)

    cond do
      window > threshold or want <= 0 -> nil
      increment(demand, window, params) >= want -> 0
      true -> Enum.max([window - demand + 1, want + window - margin - demand, 1])
    end
  end
end
