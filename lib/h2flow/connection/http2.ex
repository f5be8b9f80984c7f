defmodule H2Flow.Connection.HTTP2 do
  @moduledoc false
  # HTTP/2 on a connection's socket (H2Flow.Connection is the shell): feeds the engine, hands
  # its events to the streams, flushes it (one write per burst), checks its timeouts and the
  # idle timeout, and closes once a GOAWAY went out and every stream is done.

  require Logger

  alias H2Flow.Engine
  alias H2Flow.Connection
  alias H2Flow.Connection.{Report, Streams}

  @doc "Starts HTTP/2 on the connection: a new engine (prior knowledge, or ALPN h2)."
  def start(s) do
    {:ok, engine} = Engine.new(s.config.engine)
    adopt(s, engine)
  end

  @doc "Continues with `engine` (made here, or by an h2c upgrade), linked to the server's totals."
  def adopt(s, engine) do
    :ok = H2Flow.Server.Counters.report_to(engine, s.config.counters)
    streams = Streams.new(engine, Engine, s.config, s.conn)
    %{s | proto: __MODULE__, engine: engine, streams: streams, want_read: true, seen: 0}
  end

  def recv(s, data) do
    case Engine.recv(s.engine, data) do
      {:ok, events} ->
        {:ok, s |> events(events) |> start_pending()}

      {:error, reason} ->
        Logger.debug(fn ->
          "h2flow: connection error from #{Streams.peer_string(s.streams)}: #{inspect(reason)}"
        end)

        s = Connection.write(s, Report.flush(s))
        {:close, {:shutdown, {:connection_error, reason}}, %{s | goaway: true}}
    end
  end

  @doc "The engine's events, for the streams (a GOAWAY from the peer: nothing more to say)."
  def events(s, events) do
    Enum.reduce(events, s, fn
      {:goaway, _last, _code, _debug}, s -> %{s | goaway: true}
      event, s -> %{s | streams: Streams.event(s.streams, event)}
    end)
  end

  def start_pending(s), do: %{s | streams: Streams.start_pending(s.streams)}

  # After `101 Switching Protocols` nothing more is written until the client's preface is in:
  # a client may read the 101 with what follows it in one buffer of its own, and curl 7.88
  # gives up when more than 32 KiB follows ("connection buffer size is too small to store
  # data following HTTP Upgrade response header"). Stream 1's response waits in the engine,
  # within its send queues; the client sends its preface as soon as it has the 101.
  def flush(%{await_preface: true} = s) do
    if Engine.info(s.engine).frames_received == 0,
      do: {:ok, %{s | streams: Streams.report(s.streams)}},
      else: flush(%{s | await_preface: false})
  end

  def flush(s) do
    s = %{s | streams: Streams.report(s.streams)}
    s = Connection.write(s, Report.flush(s))

    if s.goaway and Engine.info(s.engine).done and Streams.empty?(s.streams),
      do: {:close, {:shutdown, :goaway}, s},
      else: {:ok, s}
  end

  @doc "The server is stopping: GOAWAY NO_ERROR with the last stream id."
  def drain(s) do
    :ok = Engine.goaway(s.engine, :no_error, "")
    %{s | goaway: true}
  end

  @doc "Said on the way out when nothing was said yet: GOAWAY NO_ERROR."
  def last_words(s) do
    Engine.goaway(s.engine, :no_error, "")
    Connection.write(s, Report.flush(s))
  end

  def tick(s, now) do
    info = Engine.info(s.engine)

    s =
      if info.frames_received != s.seen,
        do: %{s | seen: info.frames_received, last_activity: now},
        else: s

    idle? = Streams.empty?(s.streams)

    cond do
      # Until the client's preface and first SETTINGS are in, no frame is counted.
      info.frames_received == 0 and now - s.started_at > s.config.preface_timeout ->
        {:close, {:shutdown, :preface_timeout}, Report.count(s, :preface_timeouts)}

      true ->
        timeouts(s, info, idle?, now)
    end
  end

  defp timeouts(s, info, idle?, now) do
    case Engine.check_timeouts(s.engine) do
      {:error, reason, events} ->
        s = events(s, events)
        s = Connection.write(s, Report.flush(s))
        {:close, {:shutdown, reason}, %{s | goaway: true}}

      {:ok, [_ | _] = events} ->
        {:ok, events(s, events)}

      {:ok, []} ->
        cond do
          info.done and idle? ->
            {:close, {:shutdown, :goaway}, s}

          idle? and now - s.last_activity > s.config.idle_timeout ->
            # Idle: no stream open and no complete frame received for idle_timeout.
            Engine.goaway(s.engine, :no_error, "idle")
            s = Connection.write(s, Report.flush(s))
            s = Report.count(s, :idle_timeouts)
            {:close, {:shutdown, :idle}, %{s | goaway: true}}

          idle? and now - s.last_activity >= s.config.tick ->
            {:idle, s}

          true ->
            {:ok, s}
        end
    end
  end
end
