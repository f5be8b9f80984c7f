defmodule H2Flow.Connection.Report do
  @moduledoc false
  # What a connection tells the outside: its counters (its own, for H2Flow.stats(server,
  # :connections), and the server's, for H2Flow.stats/1), the engine's counters reported to the
  # server at each flush, and its telemetry events (the connection span, defences).

  require Logger

  alias H2Flow.{Engine, Native, Telemetry}
  alias H2Flow.Connection.{HTTP1, HTTP2, Streams}
  alias H2Flow.HTTP1.Engine, as: H1
  alias H2Flow.Server.Counters

  @doc """
  What crash reports and `:sys.get_status/1` show of a connection: no socket data, no request
  body, no configuration (TLS options may hold a private key). gen_server's format_status/1
  (OTP 25), which Elixir 1.14's GenServer does not declare.
  """
  def format_status(status) do
    Map.new(status, fn
      {:state, %{} = s} -> {:state, redacted(s)}
      {:message, {tag, sock, data}} when is_binary(data) -> {:message, {tag, sock, :redacted}}
      {:message, _} -> {:message, :redacted}
      # A crash's reason and stack (a BIF's arguments among them) may hold request bytes.
      {:reason, reason} -> {:reason, H2Flow.Stream.redact(reason)}
      {:log, log} -> {:log, H2Flow.Stream.redact(log)}
      other -> other
    end)
  end

  defp redacted(s) do
    %{phase: s.phase, proto: s.proto, peer: s.conn && s.conn.peer, counters: s.counters}
  end

  @doc "The connection's own counters, at zero."
  def zero do
    %{
      writes: 0,
      write_timeouts: 0,
      preface_timeouts: 0,
      idle_timeouts: 0,
      tls_handshake_failures: 0
    }
  end

  @doc "Counts in the connection's counters and the server's."
  def count(%{config: config, counters: counters} = s, key) do
    Counters.add(config.counters, key)
    %{s | counters: Map.update!(counters, key, &(&1 + 1))}
  end

  @doc """
  `H2Flow.Engine.flush/1`, reporting the engine's counters to the server's and the defences
  that tripped to telemetry (and the debug log).
  """
  def flush(s) do
    case Native.engine_flush_reporting(s.engine) do
      bytes when is_binary(bytes) ->
        bytes

      {bytes, defences} ->
        peer = s.streams && Streams.peer(s.streams)

        for defence <- defences do
          Logger.debug(fn -> "h2flow: defence #{defence} tripped" end)
          meta = %{defence: defence, peer: peer}
          Telemetry.execute(s.config, [:h2flow, :defence], %{count: 1}, meta)
        end

        bytes
    end
  end

  @doc "The connection span starts (the handshake is done); returns its start time."
  def started(config, conn) do
    now = System.monotonic_time()
    meta = %{peer: conn.peer, transport: config.transport}
    Telemetry.execute(config, [:h2flow, :connection, :start], %{monotonic_time: now}, meta)
    now
  end

  @doc "The connection ended: its last counters go to the server, and its span ends."
  def stopped(s, reason) do
    case s.proto do
      HTTP2 -> :ok = Native.engine_close_report(s.engine)
      HTTP1 -> :ok = H1.close_report(s.engine)
      nil -> :ok
    end

    :ok = Counters.leave(s.presence)
    if s.span_start, do: span_stop(s, reason)
    :ok
  end

  defp span_stop(s, reason) do
    now = System.monotonic_time()

    measurements =
      Map.merge(span_measurements(s), %{monotonic_time: now, duration: now - s.span_start})

    reason =
      case reason do
        # The engine's error: {:connection_error, code, message} (or a stream's).
        {:shutdown, {:connection_error, error}} when is_tuple(error) -> error
        {:shutdown, reason} -> reason
        reason -> reason
      end

    meta = %{
      peer: s.conn && s.conn.peer,
      transport: s.config.transport,
      protocol: protocol(s),
      reason: reason
    }

    Telemetry.execute(s.config, [:h2flow, :connection, :stop], measurements, meta)
  end

  defp span_measurements(%{proto: HTTP2, engine: engine}) do
    stats = Engine.stats(engine)
    wu = stats.window_update_frames

    %{
      window_updates_sent: wu.connection + wu.stream,
      stalls: stats.stalls,
      peak_buffered_bytes: stats.peak_buffered_bytes,
      streams: stats.streams_opened,
      bytes_received: stats.bytes_received,
      bytes_sent: stats.bytes_sent
    }
  end

  # HTTP/1.1: no windows; a request is a stream.
  defp span_measurements(%{proto: HTTP1, engine: engine}) do
    stats = H1.stats(engine)

    %{
      window_updates_sent: 0,
      stalls: 0,
      peak_buffered_bytes: stats.peak_buffered_bytes,
      streams: stats.requests,
      bytes_received: stats.bytes_received,
      bytes_sent: stats.bytes_sent
    }
  end

  defp span_measurements(_s) do
    %{
      window_updates_sent: 0,
      stalls: 0,
      peak_buffered_bytes: 0,
      streams: 0,
      bytes_received: 0,
      bytes_sent: 0
    }
  end

  defp protocol(%{proto: HTTP2}), do: :http2
  defp protocol(%{proto: HTTP1}), do: :http1
  defp protocol(_s), do: nil

  @doc """
  The connection's own stats: its engine's (`H2Flow.Engine.stats/1` over HTTP/2, the HTTP/1.1
  engine's counters over HTTP/1.1), its counters and its streams', its protocol.
  """
  def stats(s) do
    streams = if s.streams, do: Streams.stats(s.streams), else: Streams.counters()

    engine =
      case s.proto do
        HTTP2 -> Engine.stats(s.engine)
        HTTP1 -> HTTP1.stats(s)
        nil -> %{}
      end

    engine
    |> Map.merge(s.counters)
    |> Map.merge(streams)
    |> Map.merge(%{pid: self(), peer: s.conn && s.conn.peer, protocol: protocol(s)})
  end
end
