defmodule H2Flow.Connection.Streams do
  @moduledoc false
  # The streams of one connection and the lifecycle of their handlers, over HTTP/2 or HTTP/1.1
  # alike (`mod` is the engine's module, H2Flow.Engine or H2Flow.HTTP1.Engine, which take the
  # same calls; an HTTP/1.1 request is a stream): starts a handler process per request, and
  # finishes the stream when the handler exits (204, 500, or RST_STREAM / a cut-short HTTP/1.1
  # response). Reads are H2Flow.Connection.Reads' business, responses
  # H2Flow.Connection.Responses', telemetry spans H2Flow.Connection.Spans'. What a reader gets,
  # and every window or buffer, is the engine's decision: this module moves bytes and messages.

  require Logger

  alias H2Flow.Connection.{Reads, Request, Responses, Spans}
  alias H2Flow.Server.Counters

  defmodule Stream do
    @moduledoc false
    # One stream as the connection process sees it.
    defstruct pid: nil,
              # The request event, until the handler starts at the end of the read it came in.
              request: nil,
              # Body bytes reported and not handed to a read yet (newest first): what the engine
              # still counts against the windows. A body that arrived whole with its request
              # goes to the handler with it.
              held: [],
              # The body ended (its last bytes were reported).
              fin: false,
              # The handler was handed the whole body: nothing to discard when it is done.
              read_all: false,
              # {method, path}: a response to HEAD has no content; log lines name the request.
              line: nil,
              resp: :none,
              # The response's status (a binary), once sent.
              status: nil,
              # A registered read waiting for the engine: {reader, ref, timer, bytes handed to
              # it so far, newest first}.
              read: nil,
              # What the engine did not take yet: {caller, ref, rest, fin?}.
              sending: nil,
              handler_done: false,
              # The telemetry span (H2Flow.Connection.Spans), nil without telemetry.
              span: nil
  end

  defstruct [
    :engine,
    # The engine's module: H2Flow.Engine or H2Flow.HTTP1.Engine.
    :mod,
    :config,
    :ctx,
    # The Logger metadata a handler process starts with (its connection's h2flow_peer).
    :log_metadata,
    # Whether the server emits telemetry (config.telemetry, at hand).
    telemetry: false,
    by_id: %{},
    by_pid: %{},
    starting: [],
    counters: %{handlers_started: 0, handler_crashes: 0, handlers_stopped: 0},
    # What of `counters` the server's counters have (report/1).
    reported: %{handlers_started: 0, handler_crashes: 0, handlers_stopped: 0}
  ]

  @doc false
  def counters, do: %__MODULE__{}.counters

  def new(engine, mod, config, conn) do
    %__MODULE__{
      engine: engine,
      mod: mod,
      config: config,
      ctx: Request.context(config, conn),
      log_metadata: %{h2flow_peer: Request.peer_string(conn.peer)},
      telemetry: config.telemetry
    }
  end

  def empty?(%__MODULE__{by_id: by_id}), do: map_size(by_id) == 0
  def stats(%__MODULE__{counters: c}), do: c
  def peer(%__MODULE__{ctx: ctx}), do: ctx.peer
  def peer_string(%__MODULE__{ctx: ctx}), do: Request.peer_string(ctx.peer)

  defp count(st, key), do: %{st | counters: Map.update!(st.counters, key, &(&1 + 1))}

  @doc """
  Adds what was counted since the last report to the server's counters: once per flush (as
  the engine reports its own), not once per request.
  """
  def report(nil), do: nil
  def report(%__MODULE__{counters: same, reported: same} = st), do: st

  def report(st) do
    for {key, n} <- st.counters, (delta = n - Map.fetch!(st.reported, key)) != 0 do
      Counters.add(st.config.counters, key, delta)
    end

    %{st | reported: st.counters}
  end

  # The engines count requests; HTTP/1.0 ones are told apart here (H2Flow.stats/1 has them by
  # version).
  defp count_request(st, {:request, _, _, _, _, _, _, _, _, _, :"HTTP/1.0"}),
    do: Counters.add(st.config.counters, :http1_0_requests)

  defp count_request(_st, _request), do: :ok

  # --- what the engine reports -----------------------------------------------------------

  # A request without a body: its handler starts now. One with a body: its handler starts once
  # this read's events are handled, so a body that arrived with its headers (most of them)
  # goes to the handler with its request. (HTTP/1.1 requests have an 11th element, the
  # version.)
  def event(st, request) when elem(request, 0) == :request do
    id = elem(request, 1)
    count_request(st, request)

    if elem(request, 9) do
      spawn_handler(st, id, Request.build(request, st.ctx, nil), %Stream{
        fin: true,
        read_all: true
      })
    else
      %{
        st
        | by_id: Map.put(st.by_id, id, %Stream{request: request}),
          starting: [id | st.starting]
      }
    end
  end

  def event(st, {:data, id, data, fin}), do: Reads.data(st, id, data, fin)
  def event(st, {:read_done, id, status}), do: Reads.done(st, id, status)

  def event(st, {:trailers, id, _trailers}), do: event(st, {:data, id, "", true})

  def event(st, {tag, id, _code}) when tag == :stream_reset, do: gone(st, id)
  def event(st, {:cancelled, id}), do: gone(st, id)
  def event(st, {:stream_error, id, _code, _msg}), do: gone(st, id)
  def event(st, {:send_window_open, id}), do: Responses.resume(st, id)

  # The peer let nothing go for send_stall_timeout: the engine reset the stream. A sender
  # waiting on it is told; the handler carries on and returns.
  def event(st, {:send_timeout, id}) do
    H2Flow.Telemetry.execute(st.config, [:h2flow, :flow_control, :stall], %{count: 1}, %{
      stream_id: id,
      peer: st.ctx.peer
    })

    case st.by_id do
      %{^id => %Stream{} = s} ->
        s = s |> answer_sender({:error, :timeout}) |> Reads.fail()
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
        %{^id => %Stream{request: request, held: held, fin: fin} = s} when request != nil ->
          # A body that arrived whole goes with the request; the bytes of one still arriving
          # stay held for the handler's first read.
          {body, held} = if fin, do: {Enum.reverse(held), []}, else: {:unread, held}
          req = Request.build(request, st.ctx, body)
          spawn_handler(st, id, req, %{s | request: nil, held: held})

        _ ->
          # Reset (or refused) before its handler started.
          st
      end
    end)
  end

  # A plug's request (Plug.Conn and its copies) outgrows the default heap of 233 words once:
  # starting at 987 words saves that collection, about 3.5 µs per request (a native handler's
  # request fits in the default heap).
  defp spawn_opts(H2Flow.Plug.Handler), do: [:link, min_heap_size: 987]
  defp spawn_opts(_handler), do: [:link]

  defp spawn_handler(st, id, req, s) do
    c = st.config
    args = [c.handler, c.handler_opts, req, st.log_metadata]
    pid = :erlang.spawn_opt(H2Flow.Stream, :run, args, spawn_opts(c.handler))
    span = st.telemetry && Spans.start(c, req, IO.iodata_length(s.held))
    s = %{s | pid: pid, line: {req.method, req.path}, span: span}

    %{
      st
      | by_id: Map.put(st.by_id, id, s),
        by_pid: Map.put(st.by_pid, pid, id),
        counters: %{st.counters | handlers_started: st.counters.handlers_started + 1}
    }
  end

  # The peer reset the stream (or broke the protocol on it): stop its handler.
  defp gone(st, id) do
    case Map.pop(st.by_id, id) do
      {nil, _} ->
        st

      {s, by_id} ->
        # The handler is stopped before a waiting sender or reader is answered: the exit
        # signal comes first, so a handler told {:error, :closed} cannot return meanwhile.
        stop? = s.pid != nil and not s.handler_done
        if stop?, do: Process.exit(s.pid, :kill)
        _ = s |> answer_sender({:error, :closed}) |> Reads.fail()
        st = %{st | by_id: by_id}

        if stop? do
          if s.span, do: Spans.stop(st.config, s, :stream_reset)
          count(%{st | by_pid: Map.delete(st.by_pid, s.pid)}, :handlers_stopped)
        else
          st
        end
    end
  end

  # --- what handlers ask -----------------------------------------------------------------

  # Any process holding the request may answer it (as in Cowboy): requests are routed by
  # stream, and answered to their sender. Only the handler's own process reads the body: the
  # bytes are sent to it.
  def handle(st, from, ref, id, request) do
    case st.by_id do
      %{^id => %Stream{pid: pid}} when pid != nil and from != pid and elem(request, 0) == :read ->
        answer(from, ref, {:error, :not_handler}, st)

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
    case request do
      :read_all -> Reads.read(st, id, s, from, ref, request)
      {:read, _, _} -> Reads.read(st, id, s, from, ref, request)
      _ -> Responses.request(st, id, s, from, ref, request)
    end
  rescue
    e in ArgumentError ->
      {method, path} = s.line

      Logger.error(
        fn ->
          "h2flow: handler of stream #{id} sent an invalid response: #{Exception.message(e)}"
        end,
        h2flow_stream_id: id,
        h2flow_method: method,
        h2flow_path: path,
        h2flow_handler: Spans.handler(st.config)
      )

      Process.exit(s.pid, :kill)
      exited(st, s.pid, {:invalid_response, e})
  end

  defdelegate read_timeout(st, id, ref), to: Reads, as: :timeout

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
        unless s.read_all, do: st.mod.discard(st.engine, id)
        s = %{s | handler_done: true, read: nil, held: []}

        if reason == :normal,
          do: finish_response(st, id, s),
          else: crashed(st, id, s, reason)

      _ ->
        st
    end
  end

  # init/2 returned: a handler that did not reply gets 204, an unfinished stream is ended.
  defp finish_response(st, id, %Stream{resp: :none} = s) do
    _ = st.mod.send_headers(st.engine, id, [{":status", "204"}, date()], true)
    s = %{s | resp: :done, status: "204"}
    if s.span, do: Spans.stop(st.config, s, nil)
    done(st, id, s)
  end

  defp finish_response(st, id, %Stream{resp: :streaming, sending: nil} = s) do
    _ = st.mod.send_body(st.engine, id, "", true)
    if s.span, do: Spans.stop(st.config, s, nil)
    done(st, id, %{s | resp: :done})
  end

  defp finish_response(st, id, s) do
    if s.span, do: Spans.stop(st.config, s, nil)
    done(st, id, s)
  end

  # The handler crashed (it logged why): 500 if nothing was sent, else RST_STREAM INTERNAL_ERROR.
  defp crashed(st, id, s, reason) do
    st = count(st, :handler_crashes)

    s =
      case s.resp do
        :none ->
          headers = [{":status", "500"}, date(), {"content-length", "0"}]
          _ = st.mod.send_headers(st.engine, id, headers, true)
          %{s | resp: :done, status: "500"}

        _ ->
          :ok = st.mod.reset_stream(st.engine, id, :internal_error)
          %{s | resp: :done, sending: nil}
      end

    if s.span, do: Spans.exception(st.config, s, reason)
    done(st, id, s)
  end

  @doc "Stops every handler (the connection is closing)."
  def stop_all(st) do
    for {pid, id} <- st.by_pid do
      Process.exit(pid, :kill)
      s = Map.get(st.by_id, id, %Stream{})
      if s.span, do: Spans.stop(st.config, s, :connection_closed)
    end

    stopped = st.counters.handlers_stopped + map_size(st.by_pid)
    %{st | by_pid: %{}, counters: %{st.counters | handlers_stopped: stopped}}
  end

  # --- helpers (shared with Responses) ---------------------------------------------------

  @doc false
  # Forget a stream once its handler is done and its response is all in the engine.
  def done(st, id, %Stream{handler_done: true, resp: :done, sending: nil}),
    do: %{st | by_id: Map.delete(st.by_id, id)}

  def done(st, id, s), do: put(st, id, s)

  @doc false
  def put(st, id, s) do
    if Map.has_key?(st.by_id, id),
      do: %{st | by_id: Map.put(st.by_id, id, s)},
      else: st
  end

  @doc false
  def answer_sender(%Stream{sending: {from, ref, _, _}} = s, reply) do
    if ref, do: send(from, {ref, reply})
    %{s | sending: nil}
  end

  def answer_sender(s, _reply), do: s

  @doc false
  def answer(_from, nil, _reply, st), do: st

  def answer(from, ref, reply, st) do
    send(from, {ref, reply})
    st
  end

  @doc false
  def date, do: {"date", H2Flow.Date.current()}
end
