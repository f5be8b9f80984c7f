defmodule H2Flow.Client.Requests do
  @moduledoc false
  # The requests of one client connection: what their callers ask (open a request and send its
  # body, read the response in pieces, cancel), what the engine reports on their streams, and
  # the queue of requests waiting for a stream under the server's concurrency limit. Every
  # caller command gets exactly one reply (H2Flow.Client.Request says which). Windows and
  # crediting are the engine's:
  # a whole-body request registers a read of up to `:max_body`, so its bytes are credited as
  # they arrive; a streamed one is read (and credited) only when its caller pulls.

  alias H2Flow.Client.Request, as: Req
  alias H2Flow.Engine

  defstruct [
    :engine,
    :scheme,
    :authority,
    :max_queued,
    reqs: %{},
    by_id: %{},
    by_mon: %{},
    queue: :queue.new(),
    queued: 0,
    # Why no request can be opened any more, once that is so.
    closed: nil,
    goaway: nil,
    counters: %{requests: 0, requests_queued: 0, peak_queued_requests: 0}
  ]

  def new(engine, config) do
    %__MODULE__{
      engine: engine,
      scheme: config.scheme,
      authority: config.authority,
      max_queued: config.max_pending_requests
    }
  end

  def empty?(rq), do: map_size(rq.reqs) == 0
  def counters(rq), do: Map.put(rq.counters, :queued_requests, rq.queued)

  # --- what callers ask --------------------------------------------------------------------

  def command(rq, caller, ref, {:request, method, path, headers, {data, fin}, mode}) do
    rq = update_in(rq.counters.requests, &(&1 + 1))

    cond do
      rq.closed ->
        Req.reply(ref, {:done, {:error, rq.closed}})
        rq

      rq.queued >= rq.max_queued ->
        Req.reply(ref, {:done, {:error, :too_many_requests}})
        rq

      true ->
        {kind, max_body} = if mode == :stream, do: {:stream, nil}, else: mode

        req = %Req{
          ref: ref,
          caller: caller,
          mon: Process.monitor(caller),
          mode: kind,
          max_body: max_body,
          headers: [
            {":method", method},
            {":scheme", rq.scheme},
            {":authority", rq.authority},
            {":path", path} | headers
          ],
          sending: {data, fin},
          waiter: if(fin, do: :final, else: :ack)
        }

        rq = %{rq | reqs: Map.put(rq.reqs, ref, req), by_mon: Map.put(rq.by_mon, req.mon, ref)}
        if rq.queued == 0, do: open(rq, req, :back), else: enqueue(rq, req, :back)
    end
  end

  def command(rq, _caller, ref, {:body, data, fin}) do
    with_req(rq, ref, fn req ->
      req = %{req | waiter: if(fin, do: :final, else: :ack)}

      cond do
        req.error -> answer(rq, req)
        # The server closed the stream after a complete response (RFC 9113 8.1).
        req.id == nil -> answer(rq, req)
        true -> send_body(rq, %{req | sending: {data, fin}})
      end
    end)
  end

  def command(rq, _caller, ref, :read) do
    with_req(rq, ref, fn req -> read(rq, %{req | waiter: :read}) end)
  end

  def command(rq, _caller, ref, :cancel) do
    case rq.reqs do
      %{^ref => req} -> rq |> cancel(req) |> drain_queue()
      _ -> rq
    end
  end

  defp with_req(rq, ref, fun) do
    case rq.reqs do
      %{^ref => req} ->
        fun.(req)

      _ ->
        Req.reply(ref, {:done, {:error, :closed}})
        rq
    end
  end

  @doc "A caller exited: its requests are cancelled."
  def caller_down(rq, mon) do
    case rq.by_mon do
      %{^mon => ref} -> rq |> cancel(rq.reqs[ref]) |> drain_queue()
      _ -> rq
    end
  end

  defp cancel(rq, req) do
    if req.id, do: Engine.reset_stream(rq.engine, req.id, :cancel)
    forget(rq, req)
  end

  # --- opening streams ---------------------------------------------------------------------

  defp open(rq, req, where) do
    {data, fin} = req.sending

    case Engine.request(rq.engine, req.headers, data, fin) do
      {:ok, id, taken, blocked} ->
        req = %{req | id: id, headers: nil}
        rq = %{rq | by_id: Map.put(rq.by_id, id, req.ref)}
        sent(rq, req, data, fin, {:ok, taken, blocked})

      :wait ->
        enqueue(rq, req, where)

      {:error, :closed} ->
        fail(rq, req, rq.closed || :closed)
    end
  rescue
    e in ArgumentError -> fail(rq, req, {:invalid_request, Exception.message(e)})
  end

  defp enqueue(rq, req, where) do
    queue =
      if where == :back, do: :queue.in(req.ref, rq.queue), else: :queue.in_r(req.ref, rq.queue)

    queued = rq.queued + 1
    c = rq.counters

    c = %{
      c
      | requests_queued: c.requests_queued + if(where == :back, do: 1, else: 0),
        peak_queued_requests: max(c.peak_queued_requests, queued)
    }

    %{rq | queue: queue, queued: queued, counters: c}
  end

  @doc "Opens the streams of queued requests while the server's limit allows."
  def drain_queue(%__MODULE__{queued: 0} = rq), do: rq

  def drain_queue(rq) do
    {{:value, ref}, queue} = :queue.out(rq.queue)
    rq = %{rq | queue: queue, queued: rq.queued - 1}

    case rq.reqs do
      %{^ref => %Req{id: nil} = req} ->
        rq = open(rq, req, :front)
        if rq.queued > 0 and :queue.peek(rq.queue) == {:value, ref}, do: rq, else: drain_queue(rq)

      _ ->
        # Cancelled while it waited.
        drain_queue(rq)
    end
  end

  # --- sending bodies ----------------------------------------------------------------------

  defp send_body(rq, %Req{id: id, sending: {data, fin}} = req) do
    sent(rq, req, data, fin, Engine.send_body(rq.engine, id, data, fin))
  end

  # The engine takes at most what its queues have room for; the rest waits here (a sub-binary
  # of the caller's) for {:send_window_open, id}.
  defp sent(rq, req, data, fin, {:ok, taken, blocked}) do
    rest =
      if taken == byte_size(data), do: "", else: binary_part(data, taken, byte_size(data) - taken)

    cond do
      blocked -> put(rq, %{req | sending: {rest, fin}})
      rest != "" -> send_body(rq, %{req | sending: {rest, fin}})
      true -> answer(rq, %{req | sending: nil})
    end
  end

  defp sent(rq, req, _data, _fin, {:error, :closed}) do
    # The stream is gone; its event says why, unless the response was complete.
    error = if req.fin, do: req.error, else: req.error || :closed
    rq = %{rq | by_id: Map.delete(rq.by_id, req.id)}
    answer(rq, %{req | id: nil, sending: nil, error: error})
  end

  # --- what the engine reports -------------------------------------------------------------

  def event(rq, {:response, id, status, _headers, _fin}) when status < 200,
    do: with_id(rq, id, &put(rq, &1))

  def event(rq, {:response, id, status, headers, fin}) do
    with_id(rq, id, fn req ->
      req = %{req | status: status, resp_headers: headers, fin: fin}

      if req.mode == :whole and not fin do
        case Engine.read(rq.engine, id, req.max_body + 1) do
          :more -> too_large(rq, req)
          _ -> answer(rq, req)
        end
      else
        answer(rq, req)
      end
    end)
  end

  def event(rq, {:data, id, data, fin}) do
    with_id(rq, id, fn req ->
      req = %{req | body: [req.body | data], size: req.size + IO.iodata_length(data), fin: fin}

      cond do
        req.mode == :whole and req.size > req.max_body -> too_large(rq, req)
        fin and req.waiter != :read -> answer(rq, req)
        true -> put(rq, req)
      end
    end)
  end

  def event(rq, {:trailers, id, trailers}) do
    with_id(rq, id, fn req ->
      req = %{req | trailers: trailers, fin: true}
      if req.waiter == :read, do: put(rq, req), else: answer(rq, req)
    end)
  end

  def event(rq, {:read_done, id, status}) do
    with_id(rq, id, fn
      %Req{mode: :whole} = req when status == :more -> too_large(rq, req)
      %Req{mode: :whole} = req -> put(rq, req)
      %Req{waiter: :read} = req -> read_reply(rq, req, status)
      req -> put(rq, req)
    end)
  end

  def event(rq, {:stream_reset, id, code}) do
    reason =
      case rq.goaway do
        {last, goaway_code} when id > last -> {:goaway, goaway_code}
        _ -> {:stream_reset, code}
      end

    gone(rq, id, fn req -> if req.fin and code == :no_error, do: nil, else: reason end)
  end

  def event(rq, {:stream_error, id, code, message}),
    do: gone(rq, id, fn _ -> {:stream_error, code, message} end)

  def event(rq, {:send_timeout, id}), do: gone(rq, id, fn _ -> :send_timeout end)

  def event(rq, {:send_window_open, id}) do
    with_id(rq, id, fn
      # All of it was taken (the end of the stream too): the caller may go on.
      %Req{sending: {"", _}} = req -> answer(rq, %{req | sending: nil})
      %Req{sending: {_, _}} = req -> send_body(rq, req)
      req -> put(rq, req)
    end)
  end

  # A GOAWAY: no new stream here; those it did not process come as resets right after.
  def event(rq, {:goaway, last, code, _debug}) do
    rq = %{rq | goaway: {last, code}, closed: rq.closed || {:goaway, code}}
    fail_queued(rq, {:goaway, code})
  end

  def event(rq, _other), do: rq

  defp with_id(rq, id, fun) do
    case rq.by_id do
      %{^id => ref} -> fun.(rq.reqs[ref])
      _ -> rq
    end
  end

  # The stream is gone (reset by either side or by the engine): `why` gives the request's
  # error, or nil when the response was complete and only the rest of the request is unwanted.
  defp gone(rq, id, why) do
    case rq.by_id do
      %{^id => ref} ->
        req = rq.reqs[ref]
        rq = %{rq | by_id: Map.delete(rq.by_id, id)}
        error = why.(req)
        req = %{req | id: nil, sending: nil, error: req.error || error}

        if req.waiter == :read and error == nil,
          do: read_reply(rq, req, :fin),
          else: answer(rq, req)

      _ ->
        rq
    end
  end

  defp too_large(rq, req) do
    Engine.reset_stream(rq.engine, req.id, :cancel)
    rq = %{rq | by_id: Map.delete(rq.by_id, req.id)}
    answer(rq, %{req | id: nil, sending: nil, body: [], error: {:body_too_large, req.max_body}})
  end

  # --- replies -----------------------------------------------------------------------------

  # Answers the caller's waiting command if what it waits for is there; forgets the request
  # once it is over.
  defp answer(rq, req), do: settle(rq, Req.answer(req))

  defp settle(rq, {:keep, req}), do: put(rq, req)
  defp settle(rq, {:over, req}), do: forget(rq, req)

  defp read(rq, %Req{error: error} = req) when error != nil, do: answer(rq, req)

  defp read(rq, %Req{fin: true, id: nil} = req), do: read_reply(rq, req, :fin)

  defp read(rq, req) do
    case Engine.read(rq.engine, req.id, 1) do
      :wait -> put(rq, req)
      {:error, :closed} -> answer(rq, %{req | error: req.error || :closed})
      status -> read_reply(rq, req, status)
    end
  end

  defp read_reply(rq, req, status) do
    # Once the body ended, what the engine still counts for this stream is handed over too.
    if (status == :fin or req.fin) and req.id, do: Engine.read(rq.engine, req.id, 1)
    settle(rq, Req.read_reply(req, status))
  end

  defp fail(rq, req, reason) do
    Req.reply(req.ref, {:done, {:error, reason}})
    forget(rq, req)
  end

  @doc "Fails every request that has not finished (the connection is closing)."
  def fail_all(rq, reason) do
    Enum.reduce(Map.values(rq.reqs), %{rq | closed: rq.closed || reason}, fn req, rq ->
      # A waiting command is answered now; a caller between commands gets the error next.
      if req.waiter, do: answer(rq, %{req | error: req.error || reason}), else: rq
    end)
  end

  @doc "Refuses new requests from now on (a GOAWAY we sent); queued ones fail."
  def close(rq, reason), do: fail_queued(%{rq | closed: rq.closed || reason}, reason)

  defp fail_queued(rq, reason) do
    refs = :queue.to_list(rq.queue)
    rq = %{rq | queue: :queue.new(), queued: 0}

    Enum.reduce(refs, rq, fn ref, rq ->
      case rq.reqs do
        %{^ref => %Req{id: nil} = req} -> fail(rq, req, reason)
        _ -> rq
      end
    end)
  end

  defp forget(rq, req) do
    Process.demonitor(req.mon, [:flush])
    by_id = if req.id, do: Map.delete(rq.by_id, req.id), else: rq.by_id

    %{
      rq
      | reqs: Map.delete(rq.reqs, req.ref),
        by_mon: Map.delete(rq.by_mon, req.mon),
        by_id: by_id
    }
  end

  defp put(rq, req), do: %{rq | reqs: Map.put(rq.reqs, req.ref, req)}
end
