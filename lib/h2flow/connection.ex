defmodule H2Flow.Connection do
  @moduledoc false
  # The socket shell of one connection, whatever it speaks: owns the socket, reads with
  # {active, N} (only while the engine wants input), picks the protocol (ALPN over TLS, the
  # first bytes on cleartext: H2Flow.Connection.Preface), handles every message that is ready
  # before it flushes the engine and writes once, keeps the timers (preface, the protocol's
  # own), drains on shutdown and closes. What the bytes mean is the protocol module's business
  # (`proto`: H2Flow.Connection.HTTP2 or H2Flow.Connection.HTTP1), streams and their handlers
  # H2Flow.Connection.Streams', window and buffer decisions the engine's.

  # shutdown: a supervisor stopping the connection (after the server drained) waits this long
  # for its last words and close; a peer that does not read is not waited for beyond it.
  use GenServer, restart: :temporary, shutdown: 2_000

  require Logger

  alias H2Flow.Connection.{Handshake, Preface, Report, Request, Streams}

  # Socket messages delivered before we re-arm {active, N}: bounds the mailbox to N reads.
  @active_n Handshake.active_n()
  # Flush at the latest after this many messages, even if more are waiting...
  @max_batch 64
  # ... or once this many bytes were read since the last flush: what one flush answers (PING
  # and SETTINGS acknowledgements, say) stays bounded whatever :read_buffer is.
  @max_batch_bytes 1_048_576
  # After our last bytes we stop writing and read and discard for at most this long before
  # closing: a socket closed with unread input sends a TCP RST, which discards what the peer
  # has not read yet, our last answer first of all.
  @linger 1_000

  defstruct [
    :socket,
    :transport,
    :config,
    # The protocol module (nil until known), its engine, the streams; the connection's place
    # in the server's totals (from accept to close); what its requests share (peer, local
    # address, TLS details) and the protocol ALPN chose, once the handshake is done.
    :proto,
    :engine,
    :streams,
    :presence,
    :conn,
    :alpn,
    :started_at,
    :last_activity,
    # When the connection span started (telemetry), once the handshake is done.
    :span_start,
    phase: :handshake,
    preface: "",
    batch: 0,
    batch_bytes: 0,
    # What the protocol last saw arrive (frames, bytes), to tell activity.
    seen: 0,
    # Nothing more is said: a GOAWAY (or the protocol's last answer) went out.
    goaway: false,
    # The write side is shut (the protocol has said everything; handlers may still finish),
    # and the peer closed meanwhile.
    write_shut: false,
    peer_closed: false,
    # The socket is armed ({active, N}); `want_read`: the engine wants input.
    reading: true,
    want_read: true,
    # After an h2c upgrade, HTTP/2 output waits for the client's preface (see HTTP2.flush/1).
    await_preface: false,
    stop_reason: nil,
    counters: Report.zero()
  ]

  def start_link({socket, config}), do: GenServer.start_link(__MODULE__, {socket, config})

  @impl true
  def init({socket, config}) do
    Process.flag(:trap_exit, true)
    now = now()

    {:ok,
     %__MODULE__{
       socket: socket,
       transport: H2Flow.Transport.module(config.transport),
       config: config,
       presence: H2Flow.Server.Counters.join(config.counters),
       started_at: now,
       last_activity: now
     }}
  end

  # Crash reports and :sys.get_status/1 show the connection without the socket's data, any
  # request body, or the configuration (TLS options may hold a private key).
  @doc false
  def format_status(status), do: Report.format_status(status)

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
      {:ok, sock, conn, alpn} ->
        Logger.metadata(h2flow_peer: Request.peer_string(conn.peer))
        # Nothing is said before the client's first bytes (our HTTP/2 preface goes out with
        # the answer to them): an HTTP/1.1 client reads a plain answer rather than a binary
        # SETTINGS frame, and a client that closes at once was sent nothing.
        Process.send_after(self(), :tick, s.config.tick)
        span_start = Report.started(s.config, conn)

        {:noreply,
         %{s | socket: sock, conn: conn, alpn: alpn, phase: :preface, span_start: span_start}}

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
      _ when s.write_shut -> {:noreply, s}
      _ -> recv(data, s)
    end
  end

  def handle_info({tag, sock}, s) when tag in [:tcp_passive, :ssl_passive] do
    if s.want_read do
      _ = s.transport.setopts(sock, active: @active_n)
      {:noreply, s, 0}
    else
      {:noreply, %{s | reading: false}, 0}
    end
  end

  # Once everything was answered and said (HTTP/1.1, finishing), the client's close is
  # expected: the handlers still running after their answers get their @linger.
  def handle_info({tag, _sock}, %{write_shut: true} = s) when tag in [:tcp_closed, :ssl_closed],
    do: {:noreply, %{s | peer_closed: true}}

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

  # The server is stopping before this connection said anything: nothing to drain.
  def handle_info({:shutdown, _drain_ms}, %__MODULE__{phase: phase} = s)
      when phase in [:handshake, :preface] do
    _ = s.transport.close(s.socket)
    {:stop, {:shutdown, :drained}, s}
  end

  # The server is stopping: the protocol says so (GOAWAY; HTTP/1.1 answers what it read and
  # closes), and the streams in flight have drain_ms to finish.
  def handle_info({:shutdown, drain_ms}, s) do
    Process.send_after(self(), :drain_expired, drain_ms)
    flush(s.proto.drain(s))
  end

  def handle_info(:drain_expired, s), do: close({:shutdown, :drained}, s)

  # The protocol finished and shut the write side; handlers still running had this long.
  def handle_info(:finish_expired, s), do: close(s.stop_reason || {:shutdown, :done}, s)

  def handle_info(_other, s), do: {:noreply, s, 0}

  @impl true
  def handle_call(:stats, _from, s), do: {:reply, Report.stats(s), s, 0}

  @impl true
  def terminate(reason, s) do
    s =
      if s.phase in [:handshake, :closing],
        do: s,
        else: s |> last_words(reason) |> tap(&s.transport.close(&1.socket))

    s = stop_handlers(s)
    Report.stopped(s, reason)
  end

  # The first bytes: they (or ALPN) choose the protocol, unless they cannot tell yet.
  defp preface(data, s) do
    case Preface.select(s.preface <> data, s.alpn, s.config) do
      {:more, buffered} ->
        {:noreply, %{s | preface: buffered}}

      :refuse ->
        _ = s.transport.send(s.socket, Preface.http1_refusal())
        # Nothing may follow the HTTP/1.1 answer: no SETTINGS or GOAWAY on the way out.
        close({:shutdown, :http1_request}, %{s | goaway: true})

      {proto, bytes} ->
        s = proto.start(%{s | phase: :open, preface: ""})
        recv(bytes, s)
    end
  end

  # --- receiving, batching, writing ------------------------------------------------------

  defp recv(data, s) do
    s = %{s | batch_bytes: s.batch_bytes + byte_size(data)}

    case s.proto.recv(s, data) do
      {:ok, s} -> continue(reading(s))
      {:close, reason, s} -> close(reason, s)
    end
  end

  defp continue(s) do
    batch = s.batch + 1

    if batch >= @max_batch or s.batch_bytes >= @max_batch_bytes,
      do: flush(s),
      else: {:noreply, %{s | batch: batch}, 0}
  end

  # Nothing is said before the client's first bytes.
  defp flush(%{phase: :preface} = s), do: {:noreply, s}

  defp flush(s) do
    case s.proto.flush(%{s | batch: 0, batch_bytes: 0}) do
      {:ok, s} -> {:noreply, reading(s)}
      {:again, s} -> {:noreply, reading(s), 0}
      {:finishing, s} -> finishing(s)
      {:close, reason, s} -> close(reason, s)
    end
  end

  # Reads the socket only while the engine wants input: TCP's own window then holds the client.
  defp reading(%{want_read: true, reading: false} = s) do
    _ = s.transport.setopts(s.socket, active: @active_n)
    %{s | reading: true}
  end

  defp reading(%{want_read: false, reading: true} = s) do
    _ = s.transport.setopts(s.socket, active: false)
    %{s | reading: false}
  end

  defp reading(s), do: s

  # The protocol has said everything but handlers are still finishing (HTTP/1.1 after its last
  # response): the client gets the end of the connection now; they get @linger.
  defp finishing(%{write_shut: true} = s), do: {:noreply, reading(%{s | want_read: true})}

  defp finishing(s) do
    _ = s.transport.shutdown_write(s.socket)
    # Read and discard meanwhile, as when lingering (a close with unread input resets).
    s = %{s | want_read: true} |> reading()
    Process.send_after(self(), :finish_expired, @linger)
    {:noreply, %{s | write_shut: true, goaway: true}}
  end

  @doc false
  # A write is counted before it is made: once the peer has the bytes, stats/1 counts the
  # write that carried them.
  def write(s, ""), do: s

  def write(s, bytes) do
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

  # --- timers and closing ----------------------------------------------------------------

  defp tick(s) do
    now = now()

    cond do
      s.phase == :preface and now - s.started_at > s.config.preface_timeout ->
        # A client that sent no byte at all has nothing to read from us, nor we from it.
        {:stop, {:shutdown, :preface_timeout}, Report.count(s, :preface_timeouts)}

      s.phase != :open ->
        {:noreply, s}

      true ->
        case s.proto.tick(s, now) do
          {:ok, s} ->
            {:noreply, s, 0}

          {:close, reason, s} ->
            close(reason, s)

          {:idle, s} ->
            # Nothing open and nothing received for a tick: hibernate, so an idle keep-alive
            # connection holds only its state rather than the heap its last burst grew.
            case flush(s) do
              {:noreply, s} -> {:noreply, s, :hibernate}
              other -> other
            end
        end
    end
  end

  # Closes after our last words, lingering (see @linger).
  defp close(reason, %{peer_closed: true} = s), do: {:stop, reason, stop_handlers(s)}

  defp close(reason, s) do
    s = s |> last_words(reason) |> stop_handlers()

    case s.write_shut || s.transport.shutdown_write(s.socket) do
      ok when ok in [true, :ok] ->
        # Lingering reads and discards, also where the engine had stopped reading.
        _ = s.reading || s.transport.setopts(s.socket, active: @active_n)
        Process.send_after(self(), :linger_expired, @linger)
        {:noreply, %{s | phase: :closing, stop_reason: reason, reading: true}}

      {:error, _} ->
        {:stop, reason, s}
    end
  end

  # The protocol's last words (HTTP/2: GOAWAY NO_ERROR), unless something was said already,
  # the peer closed, or the client sent nothing at all.
  defp last_words(s, reason) do
    if match?({:shutdown, :closed}, reason) or s.goaway or s.proto == nil or
         s.phase in [:preface, :closing] do
      s
    else
      %{s.proto.last_words(s) | goaway: true}
    end
  end

  defp stop_handlers(%{streams: nil} = s), do: s
  defp stop_handlers(s), do: %{s | streams: s.streams |> Streams.stop_all() |> Streams.report()}

  defp peer(%{conn: %{peer: peer}}), do: Request.peer_string(peer)
  defp peer(_s), do: "unknown peer"

  @doc false
  def now, do: System.monotonic_time(:millisecond)
end
