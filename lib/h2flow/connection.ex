defmodule H2Flow.Connection do
  @moduledoc false
  # The socket shell of one HTTP/2 connection: owns the socket and the engine, reads with
  # {active, N}, handles every message that is ready before it flushes the engine and writes
  # once, keeps the connection's timers (preface, idle, the engine's own timeouts) and closes.
  # Streams and their handlers are H2Flow.Connection.Streams' business; window and buffer
  # decisions are the engine's.

  # shutdown: a supervisor stopping the connection (after the server drained) waits this long
  # for its last GOAWAY and close; a peer that does not read is not waited for beyond it.
  use GenServer, restart: :temporary, shutdown: 2_000

  require Logger

  alias H2Flow.Engine
  alias H2Flow.Connection.{Handshake, Preface, Report, Request, Streams}

  # Socket messages delivered before we re-arm {active, N}: bounds the mailbox to N reads.
  @active_n Handshake.active_n()
  # Flush at the latest after this many messages, even if more are waiting...
  @max_batch 64
  # ... or once this many bytes were read since the last flush: what one flush answers (PING
  # and SETTINGS acknowledgements, say) stays bounded whatever :read_buffer is.
  @max_batch_bytes 1_048_576
  # After our last frame (a GOAWAY, or the HTTP/1.1 answer) we stop writing and keep reading
  # and discarding for at most this long before closing: a socket closed with unread input
  # makes the kernel send a TCP RST, and the RST discards what we wrote that the peer has not
  # read yet, the GOAWAY first of all.
  @linger 1_000

  defstruct [
    :socket,
    :transport,
    :config,
    :engine,
    :streams,
    :started_at,
    :last_activity,
    # When the connection span started (telemetry), once the handshake is done.
    :span_start,
    phase: :handshake,
    preface: "",
    batch: 0,
    batch_bytes: 0,
    frames_seen: 0,
    goaway: false,
    stop_reason: nil,
    counters: Report.zero()
  ]

  def start_link({socket, config}), do: GenServer.start_link(__MODULE__, {socket, config})

  @impl true
  def init({socket, config}) do
    Process.flag(:trap_exit, true)
    {:ok, engine} = Engine.new(config.engine)
    :ok = H2Flow.Server.Counters.report_to(engine, config.counters)
    now = now()

    {:ok,
     %__MODULE__{
       socket: socket,
       transport: H2Flow.Transport.module(config.transport),
       config: config,
       engine: engine,
       started_at: now,
       last_activity: now
     }}
  end

  # Crash reports and :sys.get_status/1 show the connection without the socket's data, any
  # request body, or the configuration (TLS options may hold a private key).
  # gen_server's format_status/1 (OTP 25), which Elixir 1.14's GenServer does not declare.
  @doc false
  def format_status(status) do
    Map.new(status, fn
      {:state, %__MODULE__{} = s} -> {:state, redacted(s)}
      {:message, {tag, sock, data}} when is_binary(data) -> {:message, {tag, sock, :redacted}}
      {:message, _} -> {:message, :redacted}
      # A crash's reason and stack (a BIF's arguments among them) may hold request bytes.
      {:reason, reason} -> {:reason, H2Flow.Stream.redact(reason)}
      {:log, log} -> {:log, H2Flow.Stream.redact(log)}
      other -> other
    end)
  end

  defp redacted(s) do
    %{phase: s.phase, peer: s.streams && Streams.peer(s.streams), counters: s.counters}
  end

  # --- socket lifecycle ------------------------------------------------------------------

  @impl true
  # Lingering (see @linger): only the socket and the timer matter; handlers are gone.
  def handle_info(msg, %__MODULE__{phase: :closing} = s) do
    case msg do
      {tag, sock} when tag in [:tcp_passive, :ssl_passive] ->
        _ = s.transport.setopts(sock, active: @active_n)
        {:noreply, s}

      {tag, _sock} when tag in [:tcp_closed, :ssl_closed] ->
        {:stop, s.stop_reason, s}

      {tag, _sock, _reason} when tag in [:tcp_error, :ssl_error] ->
        {:stop, s.stop_reason, s}

      :linger_expired ->
        {:stop, s.stop_reason, s}

      _ ->
        {:noreply, s}
    end
  end

  def handle_info(:go, %__MODULE__{phase: :handshake} = s) do
    case Handshake.run(s.transport, s.socket, s.config) do
      {:ok, sock, conn} ->
        Logger.metadata(h2flow_peer: Request.peer_string(conn.peer))
        # Our preface goes out with the first flush, after the client's first bytes: an
        # HTTP/1.1 client then reads a plain answer rather than a binary SETTINGS frame.
        Process.send_after(self(), :tick, s.config.tick)
        span_start = Report.started(s.config, conn)
        streams = Streams.new(s.engine, s.config, conn)
        {:noreply, %{s | socket: sock, streams: streams, phase: :preface, span_start: span_start}}

      {:error, reason, peer} ->
        # Whatever failed (a TLS alert, a client that closed at once, a timeout), the socket is
        # closed and the connection ends quietly: nothing the peer does is a crash. Logged
        # once, here (:ssl's own alert logs are off, see H2Flow.Transport.TLSOptions).
        Logger.debug(fn ->
          "h2flow: handshake with #{Request.peer_string(peer)} failed: #{inspect(reason)}"
        end)

        _ = s.transport.close(s.socket)

        s =
          if Handshake.tls_failure?(s.config, reason),
            do: Report.count(s, :tls_handshake_failures),
            else: s

        {:stop, {:shutdown, {:handshake, reason}}, s}
    end
  end

  def handle_info({tag, _sock, data}, s) when tag in [:tcp, :ssl] do
    case s.phase do
      :preface -> preface(data, s)
      _ -> recv(data, s)
    end
  end

  def handle_info({tag, sock}, s) when tag in [:tcp_passive, :ssl_passive] do
    _ = s.transport.setopts(sock, active: @active_n)
    {:noreply, s, 0}
  end

  def handle_info({tag, _sock}, s) when tag in [:tcp_closed, :ssl_closed] do
    {:stop, {:shutdown, :closed}, s}
  end

  def handle_info({tag, _sock, reason}, s) when tag in [:tcp_error, :ssl_error] do
    # A peer that closes with data unread resets the socket (econnreset): as ordinary as a
    # close, and treated the same.
    Logger.debug(fn -> "h2flow: socket error from #{peer(s)}: #{inspect(reason)}" end)
    {:stop, {:shutdown, :closed}, s}
  end

  # --- what handlers ask, and their exits ------------------------------------------------

  def handle_info({:"$h2flow", from, ref, id, request}, s) do
    continue(%{s | streams: Streams.handle(s.streams, from, ref, id, request)})
  end

  # The socket's port is linked to us too: its exit (the peer closed) comes with
  # {:tcp_closed, _}, which is what we act on.
  def handle_info({:EXIT, port, _reason}, s) when is_port(port), do: {:noreply, s}

  def handle_info({:EXIT, pid, reason}, s) do
    continue(%{s | streams: Streams.exited(s.streams, pid, reason)})
  end

  def handle_info({:read_timeout, id, ref}, s) do
    continue(%{s | streams: Streams.read_timeout(s.streams, id, ref)})
  end

  # --- batching, timers, shutdown --------------------------------------------------------

  def handle_info(:timeout, s), do: flush(s)

  def handle_info(:tick, s) do
    Process.send_after(self(), :tick, s.config.tick)
    H2Flow.Date.refresh()
    tick(s)
  end

  # The server is stopping before this connection started: nothing to drain.
  def handle_info({:shutdown, _drain_ms}, %__MODULE__{phase: :handshake} = s) do
    _ = s.transport.close(s.socket)
    {:stop, {:shutdown, :drained}, s}
  end

  # The server is stopping: GOAWAY (NO_ERROR, the last stream id), and the streams in flight
  # have drain_ms to finish.
  def handle_info({:shutdown, drain_ms}, s) do
    Process.send_after(self(), :drain_expired, drain_ms)
    :ok = Engine.goaway(s.engine, :no_error, "")
    flush(%{s | goaway: true})
  end

  def handle_info(:drain_expired, s), do: close({:shutdown, :drained}, s)

  def handle_info(_other, s), do: {:noreply, s, 0}

  @impl true
  def handle_call(:stats, _from, s), do: {:reply, Report.stats(s), s, 0}

  @impl true
  def terminate(reason, s) do
    s =
      if s.phase in [:handshake, :closing],
        do: s,
        else: s |> last_goaway(reason) |> tap(&s.transport.close(&1.socket))

    s = stop_handlers(s)
    Report.stopped(s, reason)
  end

  # The first bytes on h2c: the HTTP/2 preface, a real HTTP/1.x request line (answered in
  # plain text), or not yet enough to tell. Over TLS, ALPN already chose h2.
  defp preface(data, s) do
    case Preface.classify(s.preface <> data, s.config.transport) do
      :http2 ->
        recv(s.preface <> data, %{s | phase: :open, preface: ""})

      :http1 ->
        _ = s.transport.send(s.socket, Preface.http1_refusal())
        # Nothing may follow the HTTP/1.1 answer: no SETTINGS or GOAWAY on the way out.
        close({:shutdown, :http1_request}, %{s | goaway: true})

      {:more, buffered} ->
        {:noreply, %{s | preface: buffered}}
    end
  end

  # --- receiving -------------------------------------------------------------------------

  defp recv(data, s) do
    s = %{s | batch_bytes: s.batch_bytes + byte_size(data)}

    case Engine.recv(s.engine, data) do
      {:ok, events} ->
        s
        |> events(events)
        |> then(&%{&1 | streams: Streams.start_pending(&1.streams)})
        |> continue()

      {:error, reason} ->
        Logger.debug(fn -> "h2flow: connection error from #{peer(s)}: #{inspect(reason)}" end)
        s = write(s, Report.flush(s))
        close({:shutdown, {:connection_error, reason}}, %{s | goaway: true})
    end
  end

  defp events(s, events) do
    Enum.reduce(events, s, fn
      {:goaway, _last, _code, _debug}, s -> %{s | goaway: true}
      event, s -> %{s | streams: Streams.event(s.streams, event)}
    end)
  end

  # --- batching, writing, timers, closing ------------------------------------------------

  defp continue(s) do
    batch = s.batch + 1

    if batch >= @max_batch or s.batch_bytes >= @max_batch_bytes,
      do: flush(s),
      else: {:noreply, %{s | batch: batch}, 0}
  end

  # Nothing is said before the client's first bytes (our preface goes out with the answer to
  # them): a client that closes at once was sent nothing, and nothing is counted.
  defp flush(%{phase: :preface} = s), do: {:noreply, s}

  defp flush(s) do
    s = %{s | batch: 0, batch_bytes: 0, streams: Streams.report(s.streams)}
    s = write(s, Report.flush(s))

    if s.goaway and Engine.info(s.engine).done and Streams.empty?(s.streams),
      do: close({:shutdown, :goaway}, s),
      else: {:noreply, s}
  end

  defp write(s, ""), do: s

  # A write is counted before it is made: once the peer has the bytes, stats/1 counts the
  # write that carried them.
  defp write(s, bytes) do
    s = Report.count(s, :writes)

    case s.transport.send(s.socket, bytes) do
      :ok ->
        s

      {:error, reason} ->
        # The peer is gone or not reading (send timeout): nothing more to do here.
        send(self(), {:tcp_closed, s.socket})
        if reason == :timeout, do: Report.count(s, :write_timeouts), else: s
    end
  end

  defp tick(s) do
    c = s.config
    now = now()
    info = Engine.info(s.engine)

    s =
      if info.frames_received != s.frames_seen,
        do: %{s | frames_seen: info.frames_received, last_activity: now},
        else: s

    idle? = Streams.empty?(s.streams)

    cond do
      # Until the client's preface and first SETTINGS are in, no frame is counted.
      info.frames_received == 0 and now - s.started_at > c.preface_timeout ->
        s = Report.count(s, :preface_timeouts)

        # A client that sent no byte at all has nothing to read from us, nor we from it.
        if s.phase == :preface,
          do: {:stop, {:shutdown, :preface_timeout}, s},
          else: close({:shutdown, :preface_timeout}, s)

      s.phase == :preface ->
        {:noreply, s}

      true ->
        timeouts(s, info, idle?, now)
    end
  end

  defp timeouts(s, info, idle?, now) do
    case Engine.check_timeouts(s.engine) do
      {:error, reason, events} ->
        s = events(s, events)
        s = write(s, Report.flush(s))
        close({:shutdown, reason}, %{s | goaway: true})

      {:ok, [_ | _] = events} ->
        s |> events(events) |> continue()

      {:ok, []} ->
        cond do
          info.done and idle? ->
            close({:shutdown, :goaway}, s)

          idle? and now - s.last_activity > s.config.idle_timeout ->
            # Idle: no stream open and no complete frame received for idle_timeout.
            Engine.goaway(s.engine, :no_error, "idle")
            s = write(s, Report.flush(s))
            s = Report.count(s, :idle_timeouts)
            close({:shutdown, :idle}, %{s | goaway: true})

          idle? and now - s.last_activity >= s.config.tick ->
            # Nothing open and nothing received for a tick: hibernate, so an idle keep-alive
            # connection holds only its state rather than the heap its last burst grew.
            case flush(s) do
              {:noreply, s} -> {:noreply, s, :hibernate}
              stop -> stop
            end

          true ->
            {:noreply, s, 0}
        end
    end
  end

  # Closes after our last frame, lingering (see @linger).
  defp close(reason, s) do
    s = s |> last_goaway(reason) |> stop_handlers()

    case s.transport.shutdown_write(s.socket) do
      :ok ->
        Process.send_after(self(), :linger_expired, @linger)
        {:noreply, %{s | phase: :closing, stop_reason: reason}}

      {:error, _} ->
        {:stop, reason, s}
    end
  end

  # Says GOAWAY NO_ERROR on the way out, unless a GOAWAY (or the HTTP/1.1 answer) went already,
  # the peer closed, or the client sent nothing at all (it is not spoken to in HTTP/2).
  defp last_goaway(s, reason) do
    if match?({:shutdown, :closed}, reason) or s.goaway or s.phase in [:preface, :closing] do
      s
    else
      Engine.goaway(s.engine, :no_error, "")
      %{write(s, Report.flush(s)) | goaway: true}
    end
  end

  defp stop_handlers(%{streams: nil} = s), do: s
  defp stop_handlers(s), do: %{s | streams: s.streams |> Streams.stop_all() |> Streams.report()}

  defp peer(%{streams: nil}), do: "unknown peer"
  defp peer(s), do: Streams.peer_string(s.streams)

  defp now, do: System.monotonic_time(:millisecond)
end
