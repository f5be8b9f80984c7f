defmodule H2Flow.Engine do
  @moduledoc """
  The sans-IO HTTP/2 server engine: bytes in, events and bytes out.

  An engine holds one connection's protocol state (streams, windows, HPACK tables) in the NIF.
  It never touches a socket: the caller feeds what it received with `recv/2`, acts on the
  events, tells the engine what the application consumed (`consume/3`) and wants to send
  (`send_headers/4`, `send_data/4`), then calls `flush/1` once per burst of work and writes the
  result. `flush/1` coalesces everything due: response frames, acknowledgements and the
  WINDOW_UPDATE frames the flow-control scheduler decided (at most one for the connection and
  one per stream).

  An engine must be used by one process at a time; `H2Flow`'s connection process owns one per
  connection.

  ## Example

      {:ok, engine} = H2Flow.Engine.new(max_concurrent_streams: 10)
      preface = H2Flow.Engine.flush(engine)   # our SETTINGS + the connection WINDOW_UPDATE
      # ... write `preface`; then for each chunk read from the socket:
      {:ok, events} = H2Flow.Engine.recv(engine, chunk)
      for {:headers, id, _headers, _end_stream?} <- events do
        :ok = H2Flow.Engine.send_headers(engine, id, [{":status", "200"}], false)
        {:ok, _queued} = H2Flow.Engine.send_data(engine, id, "hello", true)
      end
      bytes = H2Flow.Engine.flush(engine)     # one write

  ## Events

    * `{:headers, stream_id, headers, end_stream?}`: a request; `headers` is a list of
      `{name, value}` binaries, pseudo-headers first, validated per RFC 9113 §8.2–§8.3.
    * `{:data, stream_id, binary, end_stream?}`: request body bytes (a sub-binary of the input
      when large). Count them as consumed with `consume/3` once the application has them.
      An empty binary with `end_stream? = true` marks the end of the body.
    * `{:trailers, stream_id, headers}`: trailer fields; the body ended.
    * `{:stream_reset, stream_id, code}`: the peer reset the stream.
    * `{:stream_error, stream_id, code, message}`: the peer broke the protocol on this stream;
      the engine reset it.
    * `{:goaway, last_stream_id, code, debug_data}`: the peer is going away.
    * `{:send_window_open, stream_id}`: the stream's queued response bytes fell below
      `:max_send_queue`; more may be sent.
    * `{:windows_grown, connection_window, stream_window}`: adaptive growth raised the
      receive windows (of the connection, and of every stream); what a caller holds back
      until part of a window is buffered should scale with them.

  ## Options

  Every limit has a documented default; unknown keys raise `ArgumentError`.

  #{H2Flow.Engine.Options.docs()}
  """

  alias H2Flow.Native

  @typedoc "An engine (a NIF resource)."
  @opaque t :: reference()

  @type stream_id :: pos_integer()
  @type headers :: [{binary(), binary()}]
  @type event ::
          {:headers, stream_id(), headers(), boolean()}
          | {:data, stream_id(), binary(), boolean()}
          | {:trailers, stream_id(), headers()}
          | {:stream_reset, stream_id(), H2Flow.Frame.error_code()}
          | {:stream_error, stream_id(), H2Flow.Frame.error_code(), String.t()}
          | {:goaway, non_neg_integer(), H2Flow.Frame.error_code(), binary()}
          | {:send_window_open, stream_id()}
          | {:windows_grown, pos_integer(), non_neg_integer()}

  # recv/2 feeds the NIF at most this much per call, so one call stays well under 1 ms.
  @chunk 65_536

  @doc "Creates an engine. The server preface is queued for the first `flush/1`."
  @spec new(keyword()) :: {:ok, t()} | {:error, String.t()}
  def new(opts \\ []) do
    opts |> H2Flow.Engine.Options.validate!() |> Native.engine_new()
  end

  @doc """
  Feeds received bytes and returns the events they produced. On a connection error the engine
  queues GOAWAY (write `flush/1`'s result, then close) and returns the error.
  """
  @spec recv(t(), binary()) :: {:ok, [event()]} | {:error, H2Flow.Frame.reason()}
  def recv(engine, bytes) when byte_size(bytes) <= @chunk do
    case Native.engine_recv(engine, bytes) do
      {:ok, _events} = ok -> ok
      {:error, reason, _events} -> {:error, reason}
    end
  end

  def recv(engine, bytes) when is_binary(bytes), do: recv_chunks(engine, bytes, [])

  defp recv_chunks(engine, <<chunk::binary-size(@chunk), rest::binary>>, acc) when rest != "" do
    case Native.engine_recv(engine, chunk) do
      {:ok, events} -> recv_chunks(engine, rest, [events | acc])
      {:error, reason, _events} -> {:error, reason}
    end
  end

  defp recv_chunks(engine, last, acc) do
    case Native.engine_recv(engine, last) do
      {:ok, events} -> {:ok, Enum.reduce(acc, events, &(&1 ++ &2))}
      {:error, reason, _events} -> {:error, reason}
    end
  end

  @doc """
  The application consumed `n` body bytes of a stream: they become flow-control credit. A
  stream that is gone is a no-op; more bytes than were received raise `ArgumentError`.
  """
  @spec consume(t(), stream_id(), non_neg_integer()) :: :ok
  def consume(engine, stream_id, n), do: Native.engine_consume(engine, stream_id, n)

  @doc """
  Sends response headers (the first call; `":status"` first) or trailers (a later call with
  `end_stream? = true`). Returns `{:error, :closed}` when the stream is gone (the peer reset
  it): a normal outcome, counted in `writes_to_closed_streams`.
  """
  @spec send_headers(t(), stream_id(), headers(), boolean()) :: :ok | {:error, :closed}
  def send_headers(engine, stream_id, headers, end_stream?) do
    Native.engine_send_headers(engine, stream_id, headers, end_stream?)
  end

  @doc """
  Sends response body bytes: what the flow-control windows allow is framed now, the rest is
  queued. Returns the bytes queued for the stream; at `:max_send_queue` or more, wait for
  `{:send_window_open, stream_id}` before sending more.
  """
  @spec send_data(t(), stream_id(), iodata(), boolean()) ::
          {:ok, non_neg_integer()} | {:error, :closed}
  def send_data(engine, stream_id, data, end_stream?) do
    Native.engine_send_data(engine, stream_id, data, end_stream?)
  end

  @doc "Resets a stream (RST_STREAM with `code`). A stream that is already gone is a no-op."
  @spec reset_stream(t(), stream_id(), H2Flow.Frame.error_code()) :: :ok
  def reset_stream(engine, stream_id, code) do
    case Native.engine_reset_stream(engine, stream_id, code) do
      :ok -> :ok
      {:error, :closed} -> :ok
    end
  end

  @doc """
  Starts a graceful shutdown: GOAWAY with the last stream id seen, so open streams complete and
  new ones are ignored (RFC 9113 §6.8). See `info/1`'s `:done`.
  """
  @spec goaway(t(), H2Flow.Frame.error_code(), binary()) :: :ok
  def goaway(engine, code \\ :no_error, debug \\ ""),
    do: Native.engine_goaway(engine, code, debug)

  @doc "Everything to write now, coalesced into one binary (`\"\"` when there is nothing)."
  @spec flush(t()) :: binary()
  def flush(engine), do: Native.engine_flush(engine)

  @doc """
  Checks SETTINGS_TIMEOUT: our SETTINGS unacknowledged for longer than `:settings_timeout` is a
  connection error (GOAWAY SETTINGS_TIMEOUT queued).
  """
  @spec check_timeouts(t()) :: :ok | {:error, H2Flow.Frame.reason()}
  def check_timeouts(engine), do: Native.engine_check_timeouts(engine)

  @doc """
  The engine's counters:

    * `:frames_received`, `:frames_sent`: maps by frame type (`:data`, `:headers`, ...,
      `:unknown`);
    * `:window_update_frames`: `%{connection: n, stream: n}` sent;
      `:flushes_with_window_updates`, `:credited_bytes`;
    * `:flushes`, `:bytes_received`, `:bytes_sent`, `:data_bytes_received`, `:data_bytes_sent`;
    * `:buffered_bytes` (received, not yet consumed) and `:peak_buffered_bytes`;
      `:queued_send_bytes` and `:peak_queued_send_bytes`;
    * `:open_streams`, `:peak_open_streams`, `:streams_opened`, `:streams_refused`,
      `:streams_reset_by_peer`, `:streams_reset_by_us`, `:writes_to_closed_streams`;
    * `:stream_stalls`, `:connection_stalls`, `:stalls` (data to send and no window);
    * `:connection_window`, `:stream_window`, `:connection_window_growths`,
      `:stream_window_growths`, `:pings_sent`, `:rtt_us`;
    * `:defences`: times each defence tripped (`:rapid_reset`, `:continuation_flood`,
      `:ack_flood`, `:settings_flood`, `:empty_frames`, `:header_list_too_large`,
      `:refused_stream_flood`, `:reset_flood`) and `:defences_triggered`, their sum;
    * `:connection_errors`: connection errors answered with GOAWAY (the peer broke the
      protocol, a defence tripped, or SETTINGS_TIMEOUT), and `:stream_errors`: stream errors
      of the peer's making answered with RST_STREAM; both maps by error code (`:no_error`,
      `:protocol_error`, ..., `:http_1_1_required`, and `:unknown` for undefined codes).
      Refused streams and resets the application asks for are not errors.
  """
  @spec stats(t()) :: map()
  def stats(engine), do: Native.engine_stats(engine)

  @doc """
  State the owner acts on: `:done` (a GOAWAY was sent or received and no stream is open, or a
  connection error happened: close after writing the last flush), `:closed` (a connection error
  happened), `:open_streams`, `:buffered_bytes`, `:queued_send_bytes`, `:send_window`,
  `:connection_window`, `:settings_unacked_ms` (age of our oldest unacknowledged SETTINGS, or
  `nil`).
  """
  @spec info(t()) :: map()
  def info(engine), do: Native.engine_info(engine)
end
