defmodule H2Flow.Connection.HTTP1 do
  @moduledoc false
  # HTTP/1.1 on a connection's socket (H2Flow.Connection is the shell): feeds the HTTP/1.1
  # engine, hands its events to the same streams as HTTP/2 (a request is a stream, numbered
  # from 1), flushes it once per burst and tells the shell whether to read the socket (the
  # engine stops wanting input while it holds :max_body_buffer unread body bytes or
  # :max_pipelined requests), checks the engine's timeouts (header read, keep-alive), and
  # switches to HTTP/2 when a request asks for h2c (RFC 7540 §3.2). Refusals (smuggling,
  # limits) are the engine's: it answers them and says when the connection is done.

  require Logger

  alias H2Flow.HTTP1.Engine, as: H1
  alias H2Flow.Connection
  alias H2Flow.Connection.{HTTP2, Streams}

  @doc "Starts HTTP/1.1 on the connection (a request line came first, or ALPN http/1.1)."
  def start(s) do
    {:ok, engine} = H1.new(s.config.http1)
    :ok = H1.report_to(engine, s.config.counters)
    streams = Streams.new(engine, H1, s.config, s.conn)
    %{s | proto: __MODULE__, engine: engine, streams: streams}
  end

  def recv(s, data) do
    s = %{s | last_activity: Connection.now()}

    case H1.recv(s.engine, data) do
      {:ok, events} ->
        events(s, events)

      # The engine holds :max_body_buffer unread bytes (or :max_pipelined requests): the
      # shell stops reading now, not at the end of the burst.
      {:wait, events} ->
        events(%{s | want_read: false}, events)

      {:error, {:rejected, _status, _kind, _message} = rejected, events} ->
        # The engine answers it after the responses before it, and reads no more: the
        # connection closes once that is written.
        Logger.debug(fn ->
          "h2flow: HTTP/1.1 request from #{Streams.peer_string(s.streams)} refused: " <>
            inspect(rejected)
        end)

        events(%{s | stop_reason: {:shutdown, rejected}}, events)
    end
  end

  defp events(s, events) do
    Enum.reduce_while(events, {:ok, s}, fn
      {:upgrade, _, _, _, _} = upgrade, {:ok, s} -> {:halt, upgrade(s, upgrade)}
      event, {:ok, s} -> {:cont, {:ok, %{s | streams: Streams.event(s.streams, event)}}}
    end)
    |> case do
      {:ok, s} -> {:ok, %{s | streams: Streams.start_pending(s.streams)}}
      other -> other
    end
  end

  def flush(s) do
    s = %{s | streams: Streams.report(s.streams)}
    {bytes, events, next} = H1.flush(s.engine)
    s = Connection.write(s, bytes)

    case events(s, events) do
      {:ok, s} ->
        s = %{s | want_read: next == :read}

        cond do
          next == :done and Streams.empty?(s.streams) -> {:close, reason(s), s}
          next == :done -> {:finishing, s}
          events != [] -> {:again, s}
          true -> {:ok, s}
        end

      other ->
        other
    end
  end

  defp reason(s), do: s.stop_reason || {:shutdown, :done}

  @doc "The server is stopping: no new request is read; those read are answered, then close."
  def drain(s) do
    :ok = H1.shutdown(s.engine)
    s
  end

  # The engine said everything it had to (refusals included); there is no GOAWAY in HTTP/1.1.
  def last_words(s), do: s

  def tick(s, now) do
    case H1.check_timeouts(s.engine) do
      :ok ->
        if Streams.empty?(s.streams) and now - s.last_activity >= s.config.tick,
          do: {:idle, s},
          else: {:ok, s}

      {:error, rejected} ->
        # A head that did not arrive in time (slowloris): 408, then close.
        Logger.debug(fn ->
          "h2flow: HTTP/1.1 request from #{Streams.peer_string(s.streams)}: " <> inspect(rejected)
        end)

        {:ok, %{s | stop_reason: {:shutdown, rejected}}}
    end
  end

  # An h2c upgrade (RFC 7540 §3.2): the engine queued `101 Switching Protocols`; it goes out
  # first, then the HTTP/2 engine takes over with the request as stream 1 (its preface goes
  # out with its first flush), and the bytes after the request are the client's preface.
  defp upgrade(s, {:upgrade, _, _, _, rest} = upgrade) do
    {bytes, _events, _next} = H1.flush(s.engine)
    s = Connection.write(s, bytes)
    :ok = H1.close_report(s.engine)
    # The upgrade is the first request left (the engine allows it only with nothing pending);
    # handlers of earlier, answered requests that still run are stopped.
    s = %{s | streams: s.streams |> Streams.stop_all() |> Streams.report()}

    case H1.http2_engine(upgrade, s.config.engine) do
      {:ok, engine, events} ->
        s = HTTP2.adopt(s, engine)
        s = %{s | await_preface: true} |> HTTP2.events(events) |> HTTP2.start_pending()
        if rest == "", do: {:ok, s}, else: HTTP2.recv(s, rest)

      {:error, message} ->
        {:close, {:shutdown, {:h2c_upgrade, message}}, %{s | goaway: true}}
    end
  end

  @doc "The connection's own stats (`H2Flow.stats(server, :connections)`)."
  def stats(s), do: H1.stats(s.engine)
end
