defmodule H2Flow.Connection.Streams do
  @moduledoc false
  # The streams of one connection and the lifecycle of their handlers: starts a handler
  # process per request, forwards the body bytes the engine reports to it, registers its reads
  # and relays their completion, passes its response to the engine (holding the rest of a body
  # while the engine says blocked), and finishes the stream when the handler exits (204, 500 or
  # RST_STREAM). What a reader gets, and every window, is the engine's decision: this module
  # moves bytes and messages.

  alias H2Flow.Engine
  alias H2Flow.Connection.Request

  defmodule Stream do
    @moduledoc false
    # One stream as the connection process sees it.
    defstruct pid: nil,
              # The request event, until the handler starts at the end of the read it came in.
              request: nil,
              # Body bytes that arrived before the handler started (newest first); they go to
              # it with the request.
              early: [],
              # The body ended (its last bytes were reported; they go to the handler).
              fin: false,
              # The handler was handed the whole body: nothing to discard when it is done.
              read_all: false,
              head: false,
              resp: :none,
              # A registered read waiting for the engine: {reader, ref, timer}.
              read: nil,
              # What the engine did not take yet: {caller, ref, rest, fin?}.
              sending: nil,
              handler_done: false
  end

  defstruct [
    :engine,
    :handler,
    :handler_opts,
    :ctx,
    by_id: %{},
    by_pid: %{},
    starting: [],
    counters: %{handlers_started: 0, handler_crashes: 0, handlers_stopped: 0}
  ]

  @doc false
  def counters, do: %__MODULE__{}.counters

  def new(engine, config, conn) do
    %__MODULE__{
      engine: engine,
      handler: config.handler,
      handler_opts: config.handler_opts,
      ctx: Request.context(config, conn)
    }
  end

  def empty?(%__MODULE__{by_id: by_id}), do: map_size(by_id) == 0
  def stats(%__MODULE__{counters: c}), do: c
  def peer(%__MODULE__{ctx: ctx}), do: ctx.peer
  def peer_string(%__MODULE__{ctx: ctx}), do: Request.peer_string(ctx.peer)

  # --- what the engine reports -----------------------------------------------------------

  def event(st, {:request, id, _, _, _, _, _, _, _, true} = request) do
    spawn_handler(st, id, Request.build(request, st.ctx, nil), %Stream{fin: true, read_all: true})
  end

  # A request with a body: its handler starts once this read's events are handled, so a body
  # that arrived with its headers (most of them) goes to the handler with its request.
  def event(st, {:request, id, _, _, _, _, _, _, _, false} = request) do
    %{st | by_id: Map.put(st.by_id, id, %Stream{request: request}), starting: [id | st.starting]}
  end

  def event(st, {:data, id, data, fin}) do
    case st.by_id do
      %{^id => %Stream{pid: nil, request: r} = s} when r != nil ->
        put(st, id, %{s | early: [data | s.early], fin: fin})

      %{^id => %Stream{pid: pid} = s} when pid != nil ->
        if data != "", do: send(pid, {:"$h2flow_data", id, data})
        if fin, do: put(st, id, %{s | fin: true}), else: st

      _ ->
        st
    end
  end

  def event(st, {:read_done, id, status}) do
    case st.by_id do
      %{^id => %Stream{read: {reader, ref, timer}} = s} ->
        if timer, do: Process.cancel_timer(timer)
        send(reader, {ref, status})
        put(st, id, %{s | read: nil, read_all: status == :fin})

      _ ->
        st
    end
  end

  def event(st, {:trailers, id, _trailers}), do: event(st, {:data, id, "", true})

  def event(st, {tag, id, _code}) when tag == :stream_reset, do: gone(st, id)
  def event(st, {:stream_error, id, _code, _msg}), do: gone(st, id)
  def event(st, {:send_window_open, id}), do: resume(st, id)

  # The peer let nothing go for send_stall_timeout: the engine reset the stream. A sender
  # waiting on it is told; the handler carries on and returns.
  def event(st, {:send_timeout, id}) do
    case st.by_id do
      %{^id => %Stream{} = s} ->
        s = answer_sender(s, {:error, :timeout})
        done(st, id, %{s | resp: :done})

      _ ->
        st
    end
  end

  @doc "Starts the handlers of the requests that came with a body in the last read."
  def start_pending(%__MODULE__{starting: []} = st), do: st

  def start_pending(st) do
    st.starting
    |> Enum.reverse()
    |> Enum.reduce(%{st | starting: []}, fn id, st ->
      case st.by_id do
        %{^id => %Stream{request: request, early: early, fin: fin} = s} when request != nil ->
          req = Request.build(request, st.ctx, {Enum.reverse(early), fin})
          spawn_handler(st, id, req, %{s | request: nil, early: []})

        _ ->
          # Reset (or refused) before its handler started.
          st
      end
    end)
  end

  defp spawn_handler(st, id, req, s) do
    pid = spawn_link(H2Flow.Stream, :run, [st.handler, st.handler_opts, req])
    s = %{s | pid: pid, head: req.method == "HEAD"}

    %{
      st
      | by_id: Map.put(st.by_id, id, s),
        by_pid: Map.put(st.by_pid, pid, id),
        counters: Map.update!(st.counters, :handlers_started, &(&1 + 1))
    }
  end

  # The peer reset the stream (or broke the protocol on it): stop its handler.
  defp gone(st, id) do
    case Map.pop(st.by_id, id) do
      {nil, _} ->
        st

      {s, by_id} ->
        if s.read && elem(s.read, 2), do: Process.cancel_timer(elem(s.read, 2))
        _ = answer_sender(s, {:error, :closed})
        st = %{st | by_id: by_id}

        if s.pid && !s.handler_done do
          Process.exit(s.pid, :kill)
          counters = Map.update!(st.counters, :handlers_stopped, &(&1 + 1))
          %{st | by_pid: Map.delete(st.by_pid, s.pid), counters: counters}
        else
          st
        end
    end
  end

  # --- what handlers ask -----------------------------------------------------------------

  # Any process holding the request may answer it (as in Cowboy): requests are routed by
  # stream, and answered to their sender.
  def handle(st, from, ref, id, request) do
    case st.by_id do
      %{^id => %Stream{pid: pid} = s} when pid != nil ->
        safe_request(st, id, s, from, ref, request)

      _ ->
        answer(from, ref, {:error, :closed}, st)
    end
  end

  # H2Flow.Req checks what a handler sends; should the engine still refuse something (it
  # raises on caller misuse), that handler is at fault, not the connection: it is stopped and
  # its stream ends as if it had crashed, while the other streams carry on.
  defp safe_request(st, id, s, from, ref, request) do
    request(st, id, s, from, ref, request)
  rescue
    e in ArgumentError ->
      require Logger

      Logger.error(fn ->
        "h2flow: handler of stream #{id} sent an invalid response: #{Exception.message(e)}"
      end)

      Process.exit(s.pid, :kill)
      exited(st, s.pid, {:invalid_response, e})
  end

  # The whole body came with the request and the handler took it: hand it over (credit).
  defp request(st, id, s, _from, nil, :read_all) do
    _ = Engine.read(st.engine, id, 0)
    put(st, id, %{s | read_all: true})
  end

  defp request(st, id, s, from, ref, {:read, length, period}) do
    case Engine.read(st.engine, id, length) do
      :wait ->
        timer =
          if period != :infinity, do: Process.send_after(self(), {:read_timeout, id, ref}, period)

        put(st, id, %{s | read: {from, ref, timer}})

      status ->
        answer(from, ref, status, put(st, id, %{s | read_all: status == :fin}))
    end
  end

  # A response to HEAD has no content (RFC 9110 9.3.2): the headers end the stream, and what
  # the handler sends as body is dropped (its content-length stays, as for GET).
  defp request(st, id, s, from, ref, {:reply, status, headers, body}) do
    body = if s.head, do: "", else: body
    headers = [{":status", status}, date() | headers]

    case Engine.reply(st.engine, id, headers, body, true) do
      {:error, :closed} -> done(st, id, %{s | resp: :done})
      sent -> sent(st, id, %{s | resp: :streaming}, {from, ref, body, true}, sent)
    end
  end

  defp request(st, id, s, _from, _ref, {:stream_reply, status, headers}) do
    case Engine.send_headers(st.engine, id, [{":status", status}, date() | headers], s.head) do
      :ok -> put(st, id, %{s | resp: if(s.head, do: :done, else: :streaming)})
      {:error, :closed} -> done(st, id, %{s | resp: :done})
    end
  end

  defp request(st, id, s, _from, _ref, {:inform, status, headers}) do
    _ = Engine.send_headers(st.engine, id, [{":status", status} | headers], false)
    put(st, id, s)
  end

  defp request(st, _id, %Stream{head: true}, from, ref, {tag, _, _})
       when tag == :stream_body,
       do: answer(from, ref, :ok, st)

  defp request(st, _id, %Stream{head: true}, from, ref, {:stream_trailers, _}),
    do: answer(from, ref, :ok, st)

  defp request(
         st,
         id,
         %Stream{resp: :streaming, sending: nil} = s,
         from,
         ref,
         {:stream_body, data, fin}
       ),
       do: send_body(st, id, s, {from, ref, data, fin})

  defp request(
         st,
         id,
         %Stream{resp: :streaming, sending: nil} = s,
         from,
         ref,
         {:stream_trailers, t}
       ) do
    reply = Engine.send_headers(st.engine, id, t, true)
    answer(from, ref, reply, put(st, id, %{s | resp: :done}))
  end

  defp request(st, id, s, _from, _ref, {:reset, code}) do
    :ok = Engine.reset_stream(st.engine, id, code)
    _ = answer_sender(s, {:error, :closed})
    done(st, id, %{s | resp: :done, sending: nil})
  end

  defp request(st, _id, %Stream{resp: :done}, from, ref, _request),
    do: answer(from, ref, {:error, :closed}, st)

  defp request(st, _id, _s, from, ref, _request), do: answer(from, ref, {:error, :bad_state}, st)

  # The engine takes at most what its queues have room for; the rest of the data waits here
  # (as a sub-binary of the handler's, not a copy) for {:send_window_open, id}. The caller is
  # answered once all of its data is taken and the engine does not say blocked.
  defp send_body(st, id, s, {_from, _ref, data, fin} = piece) do
    sent(st, id, s, piece, Engine.send_body(st.engine, id, data, fin))
  end

  defp sent(st, id, s, {from, ref, data, fin}, {:ok, taken, blocked}) do
    rest =
      if taken == byte_size(data), do: "", else: binary_part(data, taken, byte_size(data) - taken)

    resp = if fin and rest == "", do: :done, else: s.resp

    cond do
      blocked -> put(st, id, %{s | sending: {from, ref, rest, fin}, resp: resp})
      rest != "" -> send_body(st, id, s, {from, ref, rest, fin})
      true -> answer(from, ref, :ok, done(st, id, %{s | sending: nil, resp: resp}))
    end
  end

  defp sent(st, id, s, {from, ref, _data, _fin}, {:error, :closed}) do
    answer(from, ref, {:error, :closed}, done(st, id, %{s | sending: nil, resp: :done}))
  end

  defp resume(st, id) do
    case st.by_id do
      %{^id => %Stream{sending: {from, ref, "", _fin}} = s} ->
        answer(from, ref, :ok, done(st, id, %{s | sending: nil}))

      %{^id => %Stream{sending: {_, _, _, _} = piece} = s} ->
        send_body(st, id, %{s | sending: nil}, piece)

      _ ->
        st
    end
  end

  def read_timeout(st, id, ref) do
    case st.by_id do
      %{^id => %Stream{read: {reader, ^ref, _timer}} = s} ->
        if Engine.read_timeout(st.engine, id), do: send(reader, {ref, :more})
        put(st, id, %{s | read: nil})

      _ ->
        st
    end
  end

  # --- handler exits ---------------------------------------------------------------------

  def exited(st, pid, reason) do
    case Map.pop(st.by_pid, pid) do
      {nil, _} -> st
      {id, by_pid} -> handler_exited(%{st | by_pid: by_pid}, id, reason)
    end
  end

  defp handler_exited(st, id, reason) do
    case st.by_id do
      %{^id => s} ->
        if s.read && elem(s.read, 2), do: Process.cancel_timer(elem(s.read, 2))
        # The rest of the body will not be read: the engine credits what it holds, and what
        # still comes as it comes.
        unless s.read_all, do: Engine.discard(st.engine, id)
        s = %{s | handler_done: true, read: nil}

        if reason == :normal,
          do: finish_response(st, id, s),
          else: crashed(st, id, s)

      _ ->
        st
    end
  end

  # init/2 returned: a handler that did not reply gets 204, an unfinished stream is ended.
  defp finish_response(st, id, %Stream{resp: :none} = s) do
    _ = Engine.send_headers(st.engine, id, [{":status", "204"}, date()], true)
    done(st, id, %{s | resp: :done})
  end

  defp finish_response(st, id, %Stream{resp: :streaming, sending: nil} = s) do
    _ = Engine.send_body(st.engine, id, "", true)
    done(st, id, %{s | resp: :done})
  end

  defp finish_response(st, id, s), do: done(st, id, s)

  # The handler crashed (it logged why): 500 if nothing was sent, else RST_STREAM INTERNAL_ERROR.
  defp crashed(st, id, s) do
    st = %{st | counters: Map.update!(st.counters, :handler_crashes, &(&1 + 1))}

    case s.resp do
      :none ->
        headers = [{":status", "500"}, date(), {"content-length", "0"}]
        _ = Engine.send_headers(st.engine, id, headers, true)
        done(st, id, %{s | resp: :done})

      _ ->
        :ok = Engine.reset_stream(st.engine, id, :internal_error)
        done(st, id, %{s | resp: :done, sending: nil})
    end
  end

  @doc "Stops every handler (the connection is closing)."
  def stop_all(st) do
    for {pid, _} <- st.by_pid, do: Process.exit(pid, :kill)
    stopped = st.counters.handlers_stopped + map_size(st.by_pid)
    %{st | by_pid: %{}, counters: %{st.counters | handlers_stopped: stopped}}
  end

  # --- helpers ---------------------------------------------------------------------------

  # Forget a stream once its handler is done and its response is all in the engine.
  defp done(st, id, %Stream{handler_done: true, resp: :done, sending: nil}),
    do: %{st | by_id: Map.delete(st.by_id, id)}

  defp done(st, id, s), do: put(st, id, s)

  defp put(st, id, s) do
    if Map.has_key?(st.by_id, id),
      do: %{st | by_id: Map.put(st.by_id, id, s)},
      else: st
  end

  defp answer_sender(%Stream{sending: {from, ref, _, _}} = s, reply) do
    if ref, do: send(from, {ref, reply})
    %{s | sending: nil}
  end

  defp answer_sender(s, _reply), do: s

  defp answer(_from, nil, _reply, st), do: st

  defp answer(from, ref, reply, st) do
    send(from, {ref, reply})
    st
  end

  defp date, do: {"date", H2Flow.Date.current()}
end
