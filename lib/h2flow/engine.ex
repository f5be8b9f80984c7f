defmodule H2Flow.Engine do
  @moduledoc """
  The sans-IO HTTP/2 engine: bytes in, events and bytes out, as a server (`new/1`) or as a
  client (`new_client/1`).

  An engine holds one connection's protocol state (streams, windows, HPACK tables, what each
  request body holds and who reads it) in the NIF. It never touches a socket: the caller feeds
  what it received with `recv/2`, acts on the events, registers the application's reads of
  request bodies (`read/3`: the engine decides what a reader gets and credits it at hand-off)
  and passes on what it wants to send (`reply/5`, `send_body/4`), then calls `flush/1` once per
  burst of work and writes the result. `flush/1` coalesces everything due: response frames,
  acknowledgements and the WINDOW_UPDATE frames the flow-control scheduler decided (at most one
  for the connection and one per stream).

  In the client role the engine writes the connection preface, opens streams for requests
  (`request/4`) within the server's SETTINGS_MAX_CONCURRENT_STREAMS, reports responses, and
  reads and credits response bodies exactly as a server does request bodies: `read/3`,
  `send_body/4` and the scheduler are the same code.

  `H2Flow`'s and `H2Flow.Client`'s connection processes own one engine per connection; the
  engine is public for applications that drive HTTP/2 over a transport of their own (a proxy,
  a test double, a socket `H2Flow` does not manage). It must be used by one process at a time.

  ## Example

  Our SETTINGS go out first; a client's preface, its SETTINGS and a `GET /` on stream 1 (a
  HEADERS frame with END_STREAM and END_HEADERS, static HPACK indices) make a request event;
  the answer goes out with the next flush, in one write:

      iex> {:ok, engine} = H2Flow.Engine.new(max_concurrent_streams: 10)
      iex> <<_length::24, 4, _::binary>> = H2Flow.Engine.flush(engine)
      iex> preface = "PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" <> <<0::24, 4, 0, 0::32>>
      iex> get = <<3::24, 1, 5, 1::32, 0x82, 0x86, 0x84>>
      iex> {:ok, [{:request, 1, "GET", "http", "", "/", "", nil, %{}, true}]} =
      ...>   H2Flow.Engine.recv(engine, preface <> get)
      iex> H2Flow.Engine.reply(engine, 1, [{":status", "200"}], "hello", true)
      {:ok, 5, false}
      iex> byte_size(H2Flow.Engine.flush(engine)) > 0
      true

  ## Events

    * `{:request, stream_id, method, scheme, authority, path, query, content_length, headers,
      end_stream?}`: a request, validated per RFC 9113 §8.2–§8.3. `authority` is `:authority`,
      else the `host` field, else `""`; `path` and `query` are `:path` split at `?`;
      `content_length` an integer or `nil`; `headers` a map of lowercase names to values, with
      repeated fields joined (`cookie` with `"; "`, others with `", "`, §8.2.3).
    * `{:response, stream_id, status, headers, end_stream?}` (client role): a response to a
      request, validated per RFC 9113 §8.3.2; `status` 1xx for an informational one (more
      follow), `headers` the list of fields after `:status`, in order.
    * `{:data, stream_id, binary, end_stream?}`: request (or, client role, response) body
      bytes for the stream's application (a sub-binary of the input when large). They count
      against the windows until handed over to a read (`read/3`); an empty binary with
      `end_stream? = true` marks the end. In the client role, the payloads of consecutive DATA
      frames of one stream come as one event, with a list of binaries, those of 256 bytes or
      more sub-binaries of the input whatever their size (join or copy what you keep:
      `H2Flow.Client` joins each read's pieces of a stream into one binary).
    * `{:read_done, stream_id, :fin | :more}`: the stream's registered read completed: the
      body ended, or the read was handed its length.
    * `{:trailers, stream_id, headers}`: trailer fields; the body ended.
    * `{:stream_reset, stream_id, code}`: the peer reset the stream.
    * `{:stream_error, stream_id, code, message}`: the peer broke the protocol on this stream;
      the engine reset it.
    * `{:goaway, last_stream_id, code, debug_data}`: the peer is going away.
    * `{:send_window_open, stream_id}`: a send that returned `blocked? = true` may go on.
    * `{:send_timeout, stream_id}`: the peer let none of the stream's queued response bytes go
      for `:send_stall_timeout`; the engine reset the stream (CANCEL).

  ## Options

  Every limit has a documented default; unknown keys raise `ArgumentError`.

  #{H2Flow.Engine.Options.docs()}
  """

  alias H2Flow.Native

  @typedoc "An engine (a NIF resource)."
  @opaque t :: reference()

  @typedoc "An HTTP/2 error code: a snake_case atom for the codes RFC 9113 defines, else an integer."
  @type error_code ::
          :no_error
          | :protocol_error
          | :internal_error
          | :flow_control_error
          | :settings_timeout
          | :stream_closed
          | :frame_size_error
          | :refused_stream
          | :cancel
          | :compression_error
          | :connect_error
          | :enhance_your_calm
          | :inadequate_security
          | :http_1_1_required
          | non_neg_integer()

  @typedoc "Why the connection ended (RFC 9113 §5.4)."
  @type reason ::
          {:connection_error, error_code(), String.t()}
          | {:stream_error, pos_integer(), error_code(), String.t()}

  @type stream_id :: pos_integer()
  @type headers :: [{binary(), binary()}]
  @type event ::
          {:request, stream_id(), binary(), binary(), binary(), binary(), binary(),
           non_neg_integer() | nil, %{optional(binary()) => binary()}, boolean()}
          | {:response, stream_id(), 100..599, headers(), boolean()}
          | {:data, stream_id(), binary() | [binary()], boolean()}
          | {:read_done, stream_id(), :fin | :more}
          | {:trailers, stream_id(), headers()}
          | {:stream_reset, stream_id(), error_code()}
          | {:stream_error, stream_id(), error_code(), String.t()}
          | {:goaway, non_neg_integer(), error_code(), binary()}
          | {:send_window_open, stream_id()}
          | {:send_timeout, stream_id()}

  # recv/2 feeds the NIF at most this much per call, so one call stays well under 1 ms. The NIF
  # returns a DATA payload of at least a quarter of the socket read it came in as a sub-binary
  # (a smaller one is copied, so that body bytes never pin more than four times their size).
  @chunk 65_536

  @doc "Creates an engine. The server preface goes out with the first `flush/1`."
  @spec new(keyword()) :: {:ok, t()} | {:error, String.t()}
  def new(opts \\ []) do
    opts |> H2Flow.Engine.Options.validate!() |> Native.engine_new()
  end

  @doc """
  Creates an engine in the client role. Its preface (the connection preface, SETTINGS with
  SETTINGS_ENABLE_PUSH 0, the WINDOW_UPDATE that opens the connection window) goes out with
  the first `flush/1`; the server's SETTINGS must be the first frame it receives.
  `:max_concurrent_streams` is the most requests it has open at once (besides the server's
  own limit). The client role's defaults differ in the windows:
  #{Enum.map_join(H2Flow.Engine.Options.client_defaults(), ", ", fn {k, v} -> "`#{inspect(k)}` `#{v}`" end)}.
  """
  @spec new_client(keyword()) :: {:ok, t()} | {:error, String.t()}
  def new_client(opts \\ []) do
    opts |> H2Flow.Engine.Options.validate!(:client) |> Native.engine_new_client()
  end

  @doc """
  Client role: opens a stream for a request and sends its headers (pseudo-header fields first:
  `":method"`, `":scheme"`, `":authority"`, `":path"`), then the start of its body as
  `send_body/4` does. Returns `{:ok, stream_id, taken, blocked?}` (send the rest of the body
  with `send_body/4`), `:wait` when as many streams are open as the server allows (nothing was
  sent: try again once a stream has closed) or `{:error, :closed}` when no stream can be opened
  on this connection any more (a GOAWAY was sent or received, or the connection failed).
  Invalid fields raise `ArgumentError`.
  """
  @spec request(t(), headers(), binary(), boolean()) ::
          {:ok, stream_id(), non_neg_integer(), boolean()} | :wait | {:error, :closed}
  def request(engine, headers, body, end_stream?) when is_binary(body) do
    Native.engine_request(engine, headers, body, end_stream?)
  end

  @doc """
  Feeds received bytes and returns the events they produced. On a connection error the engine
  queues GOAWAY (write `flush/1`'s result, then close) and returns the error.
  """
  @spec recv(t(), binary()) :: {:ok, [event()]} | {:error, reason()}
  def recv(engine, bytes) when byte_size(bytes) <= @chunk do
    case Native.engine_recv(engine, bytes, :binary.referenced_byte_size(bytes)) do
      {:ok, _events} = ok -> ok
      {:error, reason, _events} -> {:error, reason}
    end
  end

  def recv(engine, bytes) when is_binary(bytes),
    do: recv_chunks(engine, bytes, :binary.referenced_byte_size(bytes), [])

  defp recv_chunks(engine, <<chunk::binary-size(@chunk), rest::binary>>, size, acc)
       when rest != "" do
    case Native.engine_recv(engine, chunk, size) do
      {:ok, events} -> recv_chunks(engine, rest, size, [events | acc])
      {:error, reason, _events} -> {:error, reason}
    end
  end

  defp recv_chunks(engine, last, size, acc) do
    case Native.engine_recv(engine, last, size) do
      {:ok, events} -> {:ok, Enum.reduce(acc, events, &(&1 ++ &2))}
      {:error, reason, _events} -> {:error, reason}
    end
  end

  @doc """
  The application reads the body of a stream, up to `length` bytes, like
  `cowboy_req:read_body/2`: every byte reported in `{:data, ...}` events and not yet handed
  over is handed over now, and those that arrive while the read is registered as they arrive;
  handed-over bytes are credited to the peer. Returns `:fin` (the body ended: the read has
  everything), `:more` (`length` bytes were handed over), `:wait` (a `{:read_done, ...}` event
  will tell; see `read_timeout/2` for a period) or `{:error, :closed}` (the stream is gone).
  """
  @spec read(t(), stream_id(), non_neg_integer()) :: :fin | :more | :wait | {:error, :closed}
  def read(engine, stream_id, length), do: Native.engine_read(engine, stream_id, length)

  @doc "The period of the stream's waiting read expired: `true` if it was waiting (it completes)."
  @spec read_timeout(t(), stream_id()) :: boolean()
  def read_timeout(engine, stream_id), do: Native.engine_read_timeout(engine, stream_id)

  @doc """
  The application will not read the rest of the body: what the stream holds and what still
  arrives is credited at once and not reported. Once the response has ended, a body still
  coming is refused with RST_STREAM NO_ERROR (RFC 9113 §8.1).
  """
  @spec discard(t(), stream_id()) :: :ok
  def discard(engine, stream_id), do: Native.engine_discard(engine, stream_id)

  @doc """
  The application consumed `n` body bytes of a stream, for applications that do not register
  reads: they become flow-control credit. A stream that is gone is a no-op; more bytes than
  were received raise `ArgumentError`.
  """
  @spec consume(t(), stream_id(), non_neg_integer()) :: :ok
  def consume(engine, stream_id, n), do: Native.engine_consume(engine, stream_id, n)

  @doc """
  Sends response headers (the first call; `":status"` first; a 1xx status may precede the final
  one) or trailers (a later call with `end_stream? = true`). Returns `{:error, :closed}` when
  the stream is gone (the peer reset it): a normal outcome, counted in
  `writes_to_closed_streams`.
  """
  @spec send_headers(t(), stream_id(), headers(), boolean()) :: :ok | {:error, :closed}
  def send_headers(engine, stream_id, headers, end_stream?) do
    Native.engine_send_headers(engine, stream_id, headers, end_stream?)
  end

  @doc """
  Sends response headers and the start of the body in one call: `send_headers/4`, then
  `send_body/4`. Returns what `send_body/4` returns (`{:ok, 0, false}` for a response ended by
  its headers).
  """
  @spec reply(t(), stream_id(), headers(), binary(), boolean()) ::
          {:ok, non_neg_integer(), boolean()} | {:error, :closed}
  def reply(engine, stream_id, headers, body, end_stream?) do
    Native.engine_reply(engine, stream_id, headers, body, end_stream?)
  end

  @doc """
  Sends response body bytes with bounded memory: the engine takes at most `:max_send_queue`
  bytes of `data` per call, frames what the windows allow and queues the rest as far as the
  stream's and the connection's queues (`:max_connection_send_queue`) have room. Returns
  `{:ok, taken, blocked?}`: send the rest of `data` (and the end of the stream, which applies
  only once all of it was taken) again, right away unless `blocked?`, in which case wait for
  `{:send_window_open, stream_id}`.
  """
  @spec send_body(t(), stream_id(), binary(), boolean()) ::
          {:ok, non_neg_integer(), boolean()} | {:error, :closed}
  def send_body(engine, stream_id, data, end_stream?) when is_binary(data) do
    Native.engine_send_body(engine, stream_id, data, end_stream?)
  end

  @doc """
  Resets a stream (RST_STREAM with `code`). A stream that is already gone (both sides ended it,
  or it was reset) has nothing written, but what the application had not consumed of its body
  is released all the same: it gives up on the rest.
  """
  @spec reset_stream(t(), stream_id(), error_code()) :: :ok
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
  @spec goaway(t(), error_code(), binary()) :: :ok
  def goaway(engine, code \\ :no_error, debug \\ ""),
    do: Native.engine_goaway(engine, code, debug)

  @doc "Everything to write now, coalesced into one binary (`\"\"` when there is nothing)."
  @spec flush(t()) :: binary()
  def flush(engine), do: Native.engine_flush(engine)

  @doc """
  Checks the engine's timeouts: SETTINGS unacknowledged for longer than `:settings_timeout`,
  and send stalls (`:send_stall_timeout`: streams reset, reported as `{:send_timeout, id}`
  events; a connection on which nothing could be sent that long ends). Returns the events, or
  the error after which the connection must close (its GOAWAY is queued).
  """
  @spec check_timeouts(t()) :: {:ok, [event()]} | {:error, reason(), [event()]}
  def check_timeouts(engine), do: Native.engine_check_timeouts(engine)

  @doc """
  The engine's counters:

    * `:frames_received`, `:frames_sent`: maps by frame type (`:data`, `:headers`, ...,
      `:unknown`);
    * `:window_update_frames`: `%{connection: n, stream: n}` sent;
      `:flushes_with_window_updates`, `:credited_bytes`;
    * `:flushes`, `:bytes_received`, `:bytes_sent`, `:data_bytes_received`, `:data_bytes_sent`;
    * `:buffered_bytes` (received, not yet handed to a reader) and `:peak_buffered_bytes`;
      `:queued_send_bytes` and `:peak_queued_send_bytes`;
    * `:open_streams`, `:peak_open_streams`, `:streams_opened`, `:streams_refused`,
      `:streams_reset_by_peer`, `:streams_reset_by_us`, `:writes_to_closed_streams`;
    * `:stream_stalls`, `:connection_stalls`, `:stalls` (data to send and no window), and
      `:send_timeouts` (streams reset because the peer opened no window for
      `:send_stall_timeout`);
    * `:connection_window`, `:stream_window`, `:connection_window_growths`,
      `:stream_window_growths`, `:pings_sent`, `:rtt_us`;
    * `:defences`: times each defence tripped (`:rapid_reset`, `:continuation_flood`,
      `:ack_flood`, `:settings_flood`, `:empty_frames`, `:header_list_too_large`,
      `:refused_stream_flood`, `:reset_flood`) and `:defences_triggered`, their sum;
    * `:connection_errors`: connection errors answered with GOAWAY (the peer broke the
      protocol, a defence tripped, SETTINGS_TIMEOUT, a send stall), and `:stream_errors`: stream
      errors of the peer's making answered with RST_STREAM; both maps by error code
      (`:no_error`, `:protocol_error`, ..., `:http_1_1_required`, and `:unknown` for undefined
      codes). Refused streams and resets the application asks for are not errors.
  """
  @spec stats(t()) :: map()
  def stats(engine), do: Native.engine_stats(engine)

  @doc """
  State the owner acts on: `:done` (a GOAWAY was sent or received and no stream is open, or a
  connection error happened: close after writing the last flush), `:closed` (a connection error
  happened), `:open_streams`, `:frames_received`, `:buffered_bytes`, `:queued_send_bytes`,
  `:send_window`, `:connection_window`, `:settings_unacked_ms` (age of our oldest
  unacknowledged SETTINGS, or `nil`).
  """
  @spec info(t()) :: map()
  def info(engine), do: Native.engine_info(engine)
end
