defmodule H2Flow.Connection do
  @moduledoc false
  # One process per connection: owns the socket and the engine, runs one handler process per
  # request stream, and batches: it handles every message that is ready (socket data, handler
  # requests, exits), then flushes the engine and writes once.

  use GenServer, restart: :temporary

  require Logger

  alias H2Flow.{Engine, Req}

  # Socket messages delivered before we re-arm {active, N}: bounds the mailbox to N reads.
  @active_n 8
  # Flush at the latest after this many messages, even if more are waiting.
  @max_batch 64
  # ... or once this many bytes were read since the last flush: what one flush answers (PING
  # and SETTINGS acknowledgements, say) stays bounded whatever :read_buffer is.
  @max_batch_bytes 1_048_576
  # After our last frame (a GOAWAY, or the HTTP/1.1 answer) we stop writing and keep reading
  # and discarding for at most this long before closing: a socket closed with unread input
  # makes the kernel send a TCP RST, and the RST discards what we wrote that the peer has not
  # read yet, the GOAWAY first of all (a flooding client never sees why it was cut off).
  @linger 1_000

  defmodule Stream do
    @moduledoc false
    # The connection's view of one stream: handler, buffered body, pending reader and sender.
    defstruct pid: nil,
              buf: [],
              size: 0,
              fin: false,
              reader: nil,
              sending: nil,
              resp: :none,
              handler_done: false,
              head: false,
              # Body bytes handed to the handler with its request, not yet consumed.
              handed: 0,
              # A request with a body whose handler starts at the end of the batch.
              pending: nil
  end

  def start_link({socket, config}), do: GenServer.start_link(__MODULE__, {socket, config})

  @impl true
  def init({socket, config}) do
    Process.flag(:trap_exit, true)
    {:ok, engine} = Engine.new(config.engine)

    state = %{
      socket: socket,
      transport: if(config.transport == :tls, do: :ssl, else: :gen_tcp),
      config: config,
      engine: engine,
      peer: nil,
      # The local address, and over TLS the client's certificate and the session's parameters
      # (copied into each H2Flow.Req, for Plug's get_sock_data/get_peer_data/get_ssl_data).
      sock: nil,
      cert: nil,
      tls_info: nil,
      streams: %{},
      pids: %{},
      starting: [],
      buffered: 0,
      batch: 0,
      batch_bytes: 0,
      phase: :handshake,
      started_at: now(),
      last_activity: now(),
      frames_seen: 0,
      closing: nil,
      stop_reason: nil,
      goaway: false,
      counters: counters()
    }

    {:ok, state}
  end

  @doc false
  # The counters a connection keeps besides the engine's (see H2Flow.stats/1).
  def counters do
    %{
      writes: 0,
      write_timeouts: 0,
      handlers_started: 0,
      handler_crashes: 0,
      handlers_stopped: 0,
      preface_timeouts: 0,
      idle_timeouts: 0
    }
  end

  # --- socket lifecycle ------------------------------------------------------------------

  @impl true
  # Lingering (see @linger): only the socket and the timer matter; handlers are gone.
  def handle_info(msg, %{phase: :closing} = state) do
    case msg do
      {tag, _sock, _data} when tag in [:tcp, :ssl] ->
        {:noreply, state}

      {tag, sock} when tag in [:tcp_passive, :ssl_passive] ->
        setopts(state.transport, sock, active: @active_n)
        {:noreply, state}

      {tag, _sock} when tag in [:tcp_closed, :ssl_closed] ->
        {:stop, state.stop_reason, state}

      {tag, _sock, _reason} when tag in [:tcp_error, :ssl_error] ->
        {:stop, state.stop_reason, state}

      :linger_expired ->
        {:stop, state.stop_reason, state}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info(:go, %{phase: :handshake} = state) do
    case handshake(state) do
      {:ok, state} ->
        # Our preface goes out with the first flush, after the client's first bytes: an
        # HTTP/1.1 client then reads a plain 505 rather than a binary SETTINGS frame.
        Process.send_after(self(), :tick, state.config.tick)
        {:noreply, %{state | phase: :preface}}

      {:error, reason} ->
        {:stop, {:shutdown, reason}, state}
    end
  end

  def handle_info({tag, _sock, data}, state) when tag in [:tcp, :ssl] do
    case state.phase do
      :preface -> check_preface(data, state)
      _ -> recv(data, state)
    end
  end

  def handle_info({tag, sock}, state) when tag in [:tcp_passive, :ssl_passive] do
    setopts(state.transport, sock, active: @active_n)
    {:noreply, state, 0}
  end

  def handle_info({tag, _sock}, state) when tag in [:tcp_closed, :ssl_closed] do
    {:stop, {:shutdown, :closed}, state}
  end

  def handle_info({tag, _sock, reason}, state) when tag in [:tcp_error, :ssl_error] do
    # A peer that closes with data unread resets the socket (econnreset): as ordinary as a
    # close, and treated the same.
    Logger.debug(fn -> "h2flow: socket error from #{peer(state)}: #{inspect(reason)}" end)
    {:stop, {:shutdown, :closed}, state}
  end

  # --- handler requests ------------------------------------------------------------------

  def handle_info({:"$h2flow", pid, ref, id, request}, state) do
    state =
      case state.streams do
        %{^id => %Stream{pid: ^pid} = s} -> safe_request(request, id, s, pid, ref, state)
        _ -> answer(pid, ref, {:error, :closed}, state)
      end

    continue(state)
  end

  def handle_info({:EXIT, pid, reason}, state) do
    case Map.pop(state.pids, pid) do
      {nil, _} -> continue(state)
      {id, pids} -> continue(handler_exited(id, reason, %{state | pids: pids}))
    end
  end

  def handle_info({:read_timeout, id, ref}, state) do
    state =
      case state.streams do
        %{^id => %Stream{reader: {_, ^ref, _, _}} = s} -> give_body(id, s, state, true)
        _ -> state
      end

    continue(state)
  end

  def handle_info(:timeout, state), do: flush(state)

  def handle_info(:tick, state) do
    Process.send_after(self(), :tick, state.config.tick)
    H2Flow.Date.refresh()
    tick(state)
  end

  def handle_info({:shutdown, drain_ms}, state) do
    Process.send_after(self(), :drain_expired, drain_ms)
    :ok = Engine.goaway(state.engine, :no_error, "")
    flush(%{state | goaway: true, closing: :draining})
  end

  def handle_info(:drain_expired, state), do: close({:shutdown, :drained}, state)

  def handle_info(_other, state), do: {:noreply, state, 0}

  @impl true
  def handle_call(:stats, _from, state) do
    {:reply, stats(state), state, 0}
  end

  @impl true
  def terminate(reason, state) do
    state =
      if state.phase != :handshake do
        state = last_goaway(reason, state)
        _ = state.transport.close(state.socket)
        state
      else
        state
      end

    state = stop_handlers(state)
    send(state.config.stats, {:connection_closed, self(), stats(state)})
    :ok
  end

  # Closes after our last frame, lingering (see @linger).
  defp close(reason, state) do
    state = state |> then(&last_goaway(reason, &1)) |> stop_handlers()

    case shutdown_write(state.transport, state.socket) do
      :ok ->
        Process.send_after(self(), :linger_expired, @linger)
        {:noreply, %{state | phase: :closing, stop_reason: reason}}

      {:error, _} ->
        {:stop, reason, state}
    end
  end

  # Says GOAWAY NO_ERROR on the way out, unless a GOAWAY (or the HTTP/1.1 answer) went already,
  # the peer closed, or the client sent nothing at all (it is not spoken to in HTTP/2).
  defp last_goaway(reason, state) do
    if match?({:shutdown, :closed}, reason) or state.goaway or state.phase in [:preface, :closing] do
      state
    else
      Engine.goaway(state.engine, :no_error, "")
      %{write(state, Engine.flush(state.engine)) | goaway: true}
    end
  end

  defp stop_handlers(state) do
    for {pid, _} <- state.pids, do: Process.exit(pid, :kill)
    stopped = state.counters.handlers_stopped + map_size(state.pids)
    %{state | pids: %{}, counters: %{state.counters | handlers_stopped: stopped}}
  end

  # Data queued before the shutdown is still sent, then FIN (close_notify for TLS).
  defp shutdown_write(:gen_tcp, sock), do: :gen_tcp.shutdown(sock, :write)
  defp shutdown_write(:ssl, sock), do: :ssl.shutdown(sock, :write)

  # --- handshake and preface -------------------------------------------------------------

  defp handshake(%{transport: :gen_tcp, socket: sock} = state) do
    with {:ok, peer} <- :inet.peername(sock),
         {:ok, local} <- :inet.sockname(sock),
         :ok <- :inet.setopts(sock, socket_opts(state.config)) do
      {:ok, %{state | peer: peer, sock: local}}
    end
  end

  defp handshake(%{transport: :ssl, socket: sock, config: config} = state) do
    with {:ok, tls} <- :ssl.handshake(sock, config.preface_timeout),
         {:ok, peer} <- :ssl.peername(tls),
         {:ok, local} <- :ssl.sockname(tls),
         {:ok, tls_info} <- :ssl.connection_information(tls) do
      case :ssl.negotiated_protocol(tls) do
        {:ok, "h2"} ->
          :ok = :ssl.setopts(tls, socket_opts(config))
          cert = with {:ok, der} <- :ssl.peercert(tls), do: der, else: (_ -> nil)
          {:ok, %{state | socket: tls, peer: peer, sock: local, cert: cert, tls_info: tls_info}}

        _ ->
          # The client did not offer ALPN h2: tell it in HTTP/1.1 terms, then close.
          _ = :ssl.send(tls, http1_refusal())
          _ = :ssl.close(tls)
          {:error, :alpn_h2_not_negotiated}
      end
    end
  end

  defp socket_opts(config) do
    [
      active: @active_n,
      buffer: config.read_buffer,
      send_timeout: config.write_timeout,
      send_timeout_close: true
    ]
  end

  defp setopts(:gen_tcp, sock, opts), do: :inet.setopts(sock, opts)
  defp setopts(:ssl, sock, opts), do: :ssl.setopts(sock, opts)

  # An HTTP/1.x request on the h2c port gets a plain answer instead of a bare GOAWAY.
  defp check_preface(data, state) do
    if http1_request?(data) do
      _ = state.transport.send(state.socket, http1_refusal())
      # Nothing may follow the HTTP/1.1 answer: no SETTINGS or GOAWAY on the way out.
      close({:shutdown, :http1_request}, %{state | goaway: true})
    else
      recv(data, %{state | phase: :open})
    end
  end

  defp http1_request?(data) do
    case :binary.match(data, " ") do
      {n, 1} when n in 3..7 -> binary_part(data, 0, n) != "PRI"
      _ -> false
    end
  end

  defp http1_refusal do
    body = "This server speaks HTTP/2 only: h2 over TLS (ALPN), or h2c with prior knowledge.\n"

    [
      "HTTP/1.1 505 HTTP Version Not Supported\r\nconnection: close\r\n",
      "content-type: text/plain\r\ncontent-length: #{byte_size(body)}\r\n\r\n",
      body
    ]
  end

  # --- receiving -------------------------------------------------------------------------

  defp recv(data, state) do
    state = %{state | batch_bytes: state.batch_bytes + byte_size(data)}

    case Engine.recv(state.engine, data) do
      {:ok, events} ->
        events |> Enum.reduce(state, &event/2) |> start_pending() |> continue()

      {:error, reason} ->
        Logger.debug(fn -> "h2flow: connection error from #{peer(state)}: #{inspect(reason)}" end)
        state = write(state, Engine.flush(state.engine))
        close({:shutdown, {:connection_error, reason}}, %{state | goaway: true})
    end
  end

  defp event({:data, id, data, fin}, state) do
    case state.streams do
      %{^id => %Stream{handler_done: false} = s} ->
        s = %{s | buf: [data | s.buf], size: s.size + byte_size(data), fin: fin}
        state = %{state | buffered: state.buffered + byte_size(data)}
        maybe_give_body(id, s, state)

      _ ->
        # Nobody will read it (the handler is done): credit it straight away.
        if byte_size(data) > 0, do: Engine.consume(state.engine, id, byte_size(data))
        if fin, do: maybe_forget(id, state), else: state
    end
  end

  defp event({:headers, id, headers, true}, state), do: start_handler(id, headers, true, state)

  # A request with a body: its handler starts once this read's events are handled, so a body
  # that arrived with the headers (most of them) goes to the handler with its request and
  # read_body/2 needs no round trip to this process.
  defp event({:headers, id, headers, false}, state) do
    s = %Stream{pending: headers}

    %{state | streams: Map.put(state.streams, id, s), starting: [id | state.starting]}
  end

  defp event({:trailers, id, _trailers}, state) do
    case state.streams do
      %{^id => %Stream{} = s} -> maybe_give_body(id, %{s | fin: true}, state)
      _ -> maybe_forget(id, state)
    end
  end

  defp event({tag, id, _code}, state) when tag == :stream_reset, do: stream_gone(id, state)
  defp event({:stream_error, id, _code, _msg}, state), do: stream_gone(id, state)
  defp event({:send_window_open, id}, state), do: resume_send(id, state)

  # Readers are handed half a window at a time: follow the windows as they grow, or a reader
  # of a large body would get 128 KiB pieces of an 8 MiB window (and, with that much held
  # back, the windows would not keep growing).
  defp event({:windows_grown, conn_window, stream_window}, state) do
    config = %{
      state.config
      | stream_read_threshold: max(div(stream_window, 2), 1),
        connection_read_threshold: max(div(conn_window, 2), 1)
    }

    %{state | config: config}
  end

  defp event({:goaway, _last, _code, _debug}, state), do: %{state | goaway: true}

  # The peer reset the stream (or broke the protocol on it): stop its handler, drop its buffer
  # (the engine already released it).
  defp stream_gone(id, state) do
    case Map.pop(state.streams, id) do
      {nil, _} ->
        state

      {s, streams} ->
        state = %{state | streams: streams, buffered: state.buffered - s.size}

        if s.pid && !s.handler_done do
          Process.exit(s.pid, :kill)
          counters = Map.update!(state.counters, :handlers_stopped, &(&1 + 1))
          %{state | pids: Map.delete(state.pids, s.pid), counters: counters}
        else
          state
        end
    end
  end

  defp start_handler(id, headers, fin, state) do
    spawn_handler(id, build_req(id, headers, fin, state), %Stream{fin: fin}, state)
  end

  defp start_pending(%{starting: []} = state), do: state

  defp start_pending(state) do
    state.starting
    |> Enum.reverse()
    |> Enum.reduce(%{state | starting: []}, fn id, state ->
      case state.streams do
        %{^id => %Stream{pending: headers} = s} when headers != nil ->
          req = build_req(id, headers, false, state)
          s = %{s | pending: nil}

          if s.fin do
            # The whole body is here: it goes with the request. It stays counted as buffered
            # in the engine until the handler reads it (or exits), so the connection window
            # still bounds what handlers hold.
            body = joined(s.buf)
            s = %{s | buf: [], size: 0, handed: s.size}
            state = %{state | buffered: state.buffered - s.handed}
            spawn_handler(id, %{req | body: body}, s, state)
          else
            spawn_handler(id, req, s, state)
          end

        _ ->
          # Reset (or refused) before its handler started.
          state
      end
    end)
  end

  defp spawn_handler(id, req, s, state) do
    %{handler: handler, handler_opts: opts} = state.config
    pid = spawn_link(H2Flow.Stream, :run, [handler, opts, req])
    s = %{s | pid: pid, head: req.method == "HEAD"}

    %{
      state
      | streams: Map.put(state.streams, id, s),
        pids: Map.put(state.pids, pid, id),
        counters: Map.update!(state.counters, :handlers_started, &(&1 + 1))
    }
  end

  defp build_req(id, headers, fin, state) do
    {pseudo, regular} = split_headers(headers, %{}, [])
    {path, qs} = split_path(Map.get(pseudo, ":path", ""))
    headers_map = join_headers(regular)

    content_length =
      case headers_map do
        %{"content-length" => n} -> String.to_integer(n)
        _ -> nil
      end

    %Req{
      conn: self(),
      stream_id: id,
      method: Map.get(pseudo, ":method"),
      scheme: Map.get(pseudo, ":scheme", if(state.transport == :ssl, do: "https", else: "http")),
      authority: Map.get(pseudo, ":authority", Map.get(headers_map, "host")),
      path: path,
      qs: qs,
      peer: state.peer,
      sock: state.sock,
      cert: state.cert,
      tls_info: state.tls_info,
      headers: headers_map,
      content_length: content_length,
      has_body: not fin
    }
  end

  defp split_headers([{":" <> _ = name, value} | rest], pseudo, regular),
    do: split_headers(rest, Map.put(pseudo, name, value), regular)

  defp split_headers(rest, pseudo, []), do: {pseudo, rest}

  defp split_path(full) do
    case :binary.split(full, "?") do
      [path, qs] -> {path, qs}
      [path] -> {path, ""}
    end
  end

  # RFC 9113 8.2.3: cookie crumbs are joined with "; ", other repeated fields with ", ".
  defp join_headers(fields) do
    Enum.reduce(fields, %{}, fn {name, value}, acc ->
      case acc do
        %{^name => prev} ->
          Map.put(acc, name, [prev, separator(name), value] |> IO.iodata_to_binary())

        _ ->
          Map.put(acc, name, value)
      end
    end)
  end

  defp separator("cookie"), do: "; "
  defp separator(_), do: ", "

  # --- handler requests ------------------------------------------------------------------

  # H2Flow.Req checks what a handler sends; should the engine still refuse something (it
  # raises on caller misuse), that handler is at fault, not the connection: it is stopped
  # and its stream ends as if it had crashed, while the other streams carry on.
  defp safe_request(request, id, s, pid, ref, state) do
    handle_request(request, id, s, pid, ref, state)
  rescue
    e in ArgumentError ->
      Logger.error(fn ->
        "h2flow: handler of stream #{id} sent an invalid response: #{Exception.message(e)}"
      end)

      Process.exit(pid, :kill)
      state = %{state | pids: Map.delete(state.pids, pid)}
      handler_exited(id, {:invalid_response, e}, state)
  end

  # --- request bodies --------------------------------------------------------------------

  # The handler read the body that came with its request.
  defp handle_request({:consumed, n}, id, s, _pid, _ref, state) when n <= s.handed do
    if n > 0, do: Engine.consume(state.engine, id, n)
    put_stream(id, %{s | handed: s.handed - n}, state)
  end

  defp handle_request({:read_body, length, period}, id, s, pid, ref, state) do
    # Consuming 0 of an empty buffer tells the scheduler a reader waits on this stream, so
    # it will not hold connection credit back from it (scheduler rule 4).
    if s.size == 0 and not s.fin, do: Engine.consume(state.engine, id, 0)

    timer =
      if period == :infinity,
        do: nil,
        else: Process.send_after(self(), {:read_timeout, id, ref}, period)

    maybe_give_body(id, %{s | reader: {pid, ref, length, timer}}, state)
  end

  # A response to HEAD has no content (RFC 9110 9.3.2): the headers end the stream, and what
  # the handler sends as body is dropped (its content-length stays, as for GET).
  defp handle_request({:reply, status, headers, body}, id, s, _pid, _ref, state) do
    fin = body == "" or s.head

    case Engine.send_headers(
           state.engine,
           id,
           [{":status", status}, date_header() | headers],
           fin
         ) do
      :ok when fin -> put_stream(id, %{s | resp: :done}, state)
      :ok -> send_body(id, %{s | resp: :streaming}, {nil, nil, body, true}, state)
      {:error, :closed} -> state
    end
  end

  defp handle_request({:stream_reply, status, headers}, id, s, _pid, _ref, state) do
    case Engine.send_headers(
           state.engine,
           id,
           [{":status", status}, date_header() | headers],
           s.head
         ) do
      :ok -> put_stream(id, %{s | resp: if(s.head, do: :done, else: :streaming)}, state)
      {:error, :closed} -> state
    end
  end

  # An informational (1xx) response, before the final one; the engine checks the status.
  defp handle_request({:inform, status, headers}, id, %Stream{resp: :none}, _pid, _ref, state) do
    _ = Engine.send_headers(state.engine, id, [{":status", status} | headers], false)
    state
  end

  defp handle_request({tag, _, _}, _id, %Stream{head: true}, pid, ref, state)
       when tag == :stream_body,
       do: answer(pid, ref, :ok, state)

  defp handle_request({:stream_trailers, _}, _id, %Stream{head: true}, pid, ref, state),
    do: answer(pid, ref, :ok, state)

  defp handle_request(
         {:stream_body, data, fin},
         id,
         %Stream{resp: :streaming} = s,
         pid,
         ref,
         state
       ) do
    send_body(id, s, {pid, ref, data, fin}, state)
  end

  defp handle_request(
         {:stream_trailers, trailers},
         id,
         %Stream{resp: :streaming} = s,
         pid,
         ref,
         state
       ) do
    reply = Engine.send_headers(state.engine, id, trailers, true)
    answer(pid, ref, reply, put_stream(id, %{s | resp: :done}, state))
  end

  defp handle_request({:reset, code}, id, _s, _pid, _ref, state) do
    :ok = Engine.reset_stream(state.engine, id, code)
    stream_gone_quietly(id, state)
  end

  defp handle_request(_request, _id, _s, pid, ref, state) do
    answer(pid, ref, {:error, :bad_state}, state)
  end

  # Hands buffered body bytes to a waiting reader when it should have them: the body ended,
  # `length` is reached, or holding back would stall the peer on flow control (half a stream
  # window buffered on this stream, or half the connection window on the connection).
  defp maybe_give_body(id, %Stream{reader: nil} = s, state), do: put_stream(id, s, state)

  defp maybe_give_body(id, %Stream{reader: {_, _, length, _}} = s, state) do
    c = state.config

    if s.fin or s.size >= length or s.size >= c.stream_read_threshold or
         (s.size > 0 and state.buffered >= c.connection_read_threshold) do
      give_body(id, s, state, false)
    else
      put_stream(id, s, state)
    end
  end

  defp give_body(id, %Stream{reader: {pid, ref, _length, timer}} = s, state, timed_out?) do
    if timer && not timed_out?, do: Process.cancel_timer(timer)
    data = joined(s.buf)
    if s.size > 0, do: Engine.consume(state.engine, id, s.size)
    reply = if s.fin, do: {:ok, data}, else: {:more, data}
    send(pid, {ref, reply})
    s = %{s | buf: [], size: 0, reader: nil}
    state = %{state | buffered: state.buffered - byte_size(data)}

    # Release the other readers too when the connection is short of window.
    put_stream(id, s, state)
  end

  # A stream's buffered DATA, newest first, as one binary (one piece is not copied).
  defp joined(buf), do: buf |> Enum.reverse() |> IO.iodata_to_binary()

  # --- responses -------------------------------------------------------------------------

  # Hands body bytes to the engine in pieces of at most the send queue size; what does not fit
  # waits (as a sub-binary of the handler's data, not a copy) for {:send_window_open, id}. The
  # caller (a stream_body call) is answered only when all of its data is in the engine and the
  # queue is below its limit.
  defp send_body(id, s, {pid, ref, data, fin}, state) do
    limit = state.config.max_send_queue
    size = byte_size(data)
    n = min(size, limit)
    last? = n == size
    part = if last?, do: data, else: binary_part(data, 0, n)

    case Engine.send_data(state.engine, id, part, fin and last?) do
      {:ok, queued} when last? and queued < limit ->
        s = %{s | sending: nil, resp: if(fin, do: :done, else: s.resp)}
        state = answer(pid, ref, :ok, put_stream(id, s, state))
        if fin, do: maybe_finish(id, state), else: state

      {:ok, _queued} when last? ->
        # All of it is in the engine, but the queue is full: answer once it drains.
        s = %{s | sending: {pid, ref, "", fin}, resp: if(fin, do: :done, else: s.resp)}
        put_stream(id, s, state)

      {:ok, queued} ->
        rest = binary_part(data, n, size - n)

        if queued < limit,
          do: send_body(id, s, {pid, ref, rest, fin}, state),
          else: put_stream(id, %{s | sending: {pid, ref, rest, fin}}, state)

      {:error, :closed} ->
        answer(pid, ref, {:error, :closed}, state)
    end
  end

  defp resume_send(id, state) do
    case state.streams do
      %{^id => %Stream{sending: {pid, ref, "", fin}} = s} ->
        state = put_stream(id, %{s | sending: nil}, state)
        state = answer(pid, ref, :ok, state)
        if fin, do: maybe_finish(id, state), else: state

      %{^id => %Stream{sending: {_pid, _ref, _data, _fin} = pending} = s} ->
        send_body(id, %{s | sending: nil}, pending, state)

      _ ->
        state
    end
  end

  defp answer(_pid, nil, _reply, state), do: state

  defp answer(pid, ref, reply, state) do
    send(pid, {ref, reply})
    state
  end

  # --- handler exits ---------------------------------------------------------------------

  defp handler_exited(id, reason, state) do
    case state.streams do
      %{^id => s} ->
        # The body will never be read: release what is buffered, credit the rest as it comes.
        if s.size + s.handed > 0, do: Engine.consume(state.engine, id, s.size + s.handed)
        state = %{state | buffered: state.buffered - s.size}
        s = %{s | handler_done: true, pid: nil, reader: nil, buf: [], size: 0, handed: 0}
        state = put_stream(id, s, state)

        state =
          if reason == :normal,
            do: finish_response(id, s, state),
            else: crashed(id, s, state)

        maybe_finish(id, state)

      _ ->
        state
    end
  end

  # init/2 returned: a handler that did not reply gets 204, an unfinished stream is ended.
  defp finish_response(id, %Stream{resp: :none} = s, state) do
    headers = [{":status", "204"}, date_header()]
    :ok_or_closed = ok_or_closed(Engine.send_headers(state.engine, id, headers, true))
    put_stream(id, %{s | resp: :done}, state)
  end

  defp finish_response(id, %Stream{resp: :streaming, sending: nil} = s, state) do
    _ = Engine.send_data(state.engine, id, "", true)
    put_stream(id, %{s | resp: :done}, state)
  end

  defp finish_response(_id, _s, state), do: state

  # The handler crashed (it logged why): 500 if nothing was sent, else RST_STREAM INTERNAL_ERROR.
  defp crashed(id, s, state) do
    state = %{state | counters: Map.update!(state.counters, :handler_crashes, &(&1 + 1))}

    case s.resp do
      :none ->
        headers = [{":status", "500"}, date_header(), {"content-length", "0"}]
        :ok_or_closed = ok_or_closed(Engine.send_headers(state.engine, id, headers, true))
        put_stream(id, %{s | resp: :done}, state)

      :streaming ->
        :ok = Engine.reset_stream(state.engine, id, :internal_error)
        stream_gone_quietly(id, state)

      :done ->
        state
    end
  end

  defp ok_or_closed(:ok), do: :ok_or_closed
  defp ok_or_closed({:error, :closed}), do: :ok_or_closed

  # Forget a stream once its handler is done and its response is fully handed to the engine.
  # A request body still arriving is then not wanted: RST_STREAM NO_ERROR (RFC 9113 8.1).
  defp maybe_finish(id, state) do
    case state.streams do
      %{^id => %Stream{handler_done: true, resp: :done, sending: nil} = s} ->
        unless s.fin, do: Engine.reset_stream(state.engine, id, :no_error)
        %{state | streams: Map.delete(state.streams, id)}

      _ ->
        state
    end
  end

  defp maybe_forget(id, state) do
    case state.streams do
      %{^id => %Stream{handler_done: true}} -> maybe_finish(id, state)
      _ -> state
    end
  end

  defp stream_gone_quietly(id, state) do
    case Map.pop(state.streams, id) do
      {nil, _} -> state
      {s, streams} -> %{state | streams: streams, buffered: state.buffered - s.size}
    end
  end

  defp put_stream(id, s, state) do
    if Map.has_key?(state.streams, id),
      do: %{state | streams: Map.put(state.streams, id, s)},
      else: state
  end

  # --- batching, writing, timers ---------------------------------------------------------

  defp continue(state) do
    batch = state.batch + 1

    if batch >= @max_batch or state.batch_bytes >= @max_batch_bytes,
      do: flush(state),
      else: {:noreply, %{state | batch: batch}, 0}
  end

  defp flush(state) do
    state = write(%{state | batch: 0, batch_bytes: 0}, Engine.flush(state.engine))

    if state.goaway and Engine.info(state.engine).done and map_size(state.streams) == 0 do
      close({:shutdown, :goaway}, state)
    else
      {:noreply, state}
    end
  end

  defp write(state, ""), do: state

  defp write(state, bytes) do
    case state.transport.send(state.socket, bytes) do
      :ok ->
        %{state | counters: Map.update!(state.counters, :writes, &(&1 + 1))}

      {:error, reason} ->
        # The peer is gone or not reading (send timeout): nothing more to do here.
        send(self(), {:tcp_closed, state.socket})

        if reason == :timeout,
          do: update_in(state.counters.write_timeouts, &(&1 + 1)),
          else: state
    end
  end

  defp tick(state) do
    c = state.config
    now = now()
    info = Engine.info(state.engine)

    state =
      if info.frames_received != state.frames_seen,
        do: %{state | frames_seen: info.frames_received, last_activity: now},
        else: state

    cond do
      # Until the client's preface and first SETTINGS are in, no frame is counted.
      info.frames_received == 0 and now - state.started_at > c.preface_timeout ->
        state = update_in(state.counters.preface_timeouts, &(&1 + 1))

        # A client that sent no byte at all has nothing to read from us, nor we from it.
        if state.phase == :preface,
          do: {:stop, {:shutdown, :preface_timeout}, state},
          else: close({:shutdown, :preface_timeout}, state)

      match?({:error, _}, Engine.check_timeouts(state.engine)) ->
        state = write(state, Engine.flush(state.engine))
        close({:shutdown, :settings_timeout}, %{state | goaway: true})

      info.done and map_size(state.streams) == 0 ->
        close({:shutdown, :goaway}, state)

      info.frames_received > 0 and map_size(state.streams) == 0 and
          now - state.last_activity > c.idle_timeout ->
        # Idle: no stream open and no complete frame received for idle_timeout (until the
        # first frame, the preface timeout applies instead).
        Engine.goaway(state.engine, :no_error, "idle")
        state = write(state, Engine.flush(state.engine))
        state = update_in(state.counters.idle_timeouts, &(&1 + 1))
        close({:shutdown, :idle}, %{state | goaway: true})

      map_size(state.streams) == 0 and now - state.last_activity >= c.tick ->
        # Nothing open and nothing received for a tick: hibernate, so an idle keep-alive
        # connection holds only its state (about 1 KiB) rather than the heap its last burst
        # grew. The next message wakes it as usual.
        case flush(state) do
          {:noreply, state} -> {:noreply, state, :hibernate}
          stop -> stop
        end

      true ->
        {:noreply, state, 0}
    end
  end

  defp stats(state) do
    state.engine
    |> Engine.stats()
    |> Map.merge(state.counters)
  end

  defp date_header, do: {"date", H2Flow.Date.current()}

  defp peer(%{peer: {ip, port}}), do: "#{:inet.ntoa(ip)}:#{port}"
  defp peer(_), do: "unknown peer"

  defp now, do: System.monotonic_time(:millisecond)
end
