defmodule H2Flow.HTTP1.Engine do
  @moduledoc false
  # The sans-IO HTTP/1.x server engine (native/h2flow_core/src/http1) for one connection: bytes
  # in, events and bytes out, with the calls and return shapes of H2Flow.Engine, so that the
  # connection's streams (H2Flow.Connection.Streams) drive either engine alike. Used by one
  # process at a time.
  #
  # Requests are numbered from 1 in arrival order. The caller feeds what it read with recv/2,
  # acts on the events, answers each request with send_headers/4, reply/5 and send_body/4
  # (":status" first, as in HTTP/2; send_body/4 takes at most what the send queue has room
  # for), registers reads of request bodies with read/3 (the engine hands a read what it holds
  # and what arrives while it waits, and reports {:read_done, id, :fin | :more}; the first read
  # writes 100 Continue if the client waits for it), then calls flush/1 once per burst: it
  # returns the bytes to write, more events, and whether to read the socket (:read), not now
  # (:wait: the engine holds :max_body_buffer unread bytes or :max_pipelined requests), or to
  # close once the bytes are written (:done).
  #
  # Events:
  #   {:request, id, method, scheme, authority, path, qs, content_length, headers, end?,
  #    version}   H2Flow.Engine's request event (headers a map, repeated fields joined) plus
  #       the version, :"HTTP/1.1" | :"HTTP/1.0"; every field line is in headers (host too)
  #   {:data, id, binary, end_stream?}   request body (a sub-binary of the input when large)
  #   {:read_done, id, :fin | :more}     the request's registered read completed
  #   {:trailers, id, headers}           the body ended with these trailers
  #   {:send_window_open, id}            a send that returned blocked? = true may go on
  #   {:cancelled, id}                   the connection closes before this request's turn
  #   {:upgrade, settings, headers, body, rest}  h2c: 101 is queued; flush it, then continue
  #       with http2_engine/2 and feed the HTTP/2 engine `rest` and every later read
  #
  # A refused request (smuggling, limits, bad syntax) is answered by the engine itself, after
  # the responses before it, and the connection reads no more: recv/2 and check_timeouts/1
  # return {:error, {:rejected, status, kind, message}, ...}.

  alias H2Flow.Native

  @opaque t :: reference()
  @type id :: pos_integer()
  @type headers :: [{binary(), binary()}]
  @type rejection :: {:rejected, 400..505, atom(), String.t()}
  @type event :: tuple()

  # recv/2 feeds the NIF at most this much per call, so one call stays well under 1 ms.
  @chunk 65_536
  @u32 0xFFFF_FFFF

  # The defaults are those of native/h2flow_core/src/http1/config.rs (Config::default()), read
  # from the NIF when this module compiles.
  @rust_defaults H2Flow.Native.h1_defaults()

  # The options a server takes ({key, type, doc}).
  @server_options [
    {:h2c_upgrade, :boolean,
     "honour `Upgrade: h2c` (RFC 7540 §3.2) on cleartext HTTP/1.1 requests: `101 Switching Protocols`, then HTTP/2 on the same connection (only when `:http_versions` has `:http2`)"},
    {:max_request_line, {:int, 1, @u32}, "longest request line; longer: 414"},
    {:max_headers, {:int, 1, 10_000}, "most field lines (and trailer lines); more: 431"},
    {:max_header_section, {:int, 1, @u32},
     "longest header (or trailer) section, request line included; longer: 431"},
    {:max_chunk_line, {:int, 3, @u32},
     "longest chunk-size line with its extensions; longer: 400"},
    {:header_timeout, {:int, 1, @u32},
     "ms from the first byte of a request head (from the start of the connection for the first) to its end; then 408 and close, or a silent close if nothing came (slowloris)"},
    {:max_pipelined, {:int, 1, @u32},
     "requests parsed and not yet answered (pipelining); at the limit the socket is not read until the oldest response is complete"},
    {:max_body_buffer, {:int, 1, 0xFFFF_FFFF_FFFF},
     "request-body bytes received that no read asked for, beyond which the socket is not read (TCP's window then stops the client)"},
    {:max_discard, {:int, 0, 0xFFFF_FFFF_FFFF},
     "unread request-body bytes read and thrown away after a response, to keep the connection; more: the connection closes"},
    {:max_upgrade_body, {:int, 0, 0xFFFF_FFFF_FFFF},
     "largest body an h2c upgrade request may carry (it is read whole before the switch); larger: served over HTTP/1.1"}
  ]

  # Set from other options of the server: :idle_timeout, :max_send_queue, :transport.
  @derived [
    {:keepalive_timeout, {:int, 1, @u32},
     "ms without a request while nothing is in progress; then a silent close"},
    {:max_send_queue, {:int, 1, 0xFFFF_FFFF_FFFF},
     "unwritten response bytes per request beyond which the sender waits"},
    {:secure, :boolean, "TLS connection: :scheme is https, no h2c upgrade"}
  ]

  @options @server_options ++ @derived
  @defaults Map.new(@options, fn {k, _, _} -> {k, Map.fetch!(@rust_defaults, k)} end)

  @doc false
  def server_keys, do: Enum.map(@server_options, &elem(&1, 0))

  @doc false
  def option_docs do
    Enum.map_join(@server_options, "\n", fn {key, _, doc} ->
      "    * `#{inspect(key)}` (default `#{inspect(@defaults[key])}`): #{doc}."
    end)
  end

  @doc """
  The complete configuration of a server's HTTP/1.1 connections: its HTTP/1.1 options
  (validated) and what comes from its other options.
  """
  @spec config(keyword(), map()) :: map()
  def config(opts, %{idle_timeout: idle, max_send_queue: queue, transport: transport}) do
    keepalive = if idle == :infinity, do: @u32, else: idle

    validate!(
      [keepalive_timeout: keepalive, max_send_queue: queue, secure: transport == :tls] ++ opts
    )
  end

  @spec new(keyword() | map()) :: {:ok, t()} | {:error, String.t()}
  def new(opts \\ [])
  def new(opts) when is_list(opts), do: opts |> validate!() |> Native.h1_new()
  def new(%{} = config), do: Native.h1_new(config)

  # {:wait, events}: the engine wants no more input for now (do not read the socket).
  @spec recv(t(), binary()) ::
          {:ok | :wait, [event()]} | {:error, rejection(), [event()]}
  def recv(engine, bytes) when byte_size(bytes) <= @chunk do
    Native.h1_recv(engine, bytes, :binary.referenced_byte_size(bytes))
  end

  def recv(engine, bytes) when is_binary(bytes),
    do: recv_chunks(engine, bytes, :binary.referenced_byte_size(bytes), [])

  defp recv_chunks(engine, <<chunk::binary-size(@chunk), rest::binary>>, size, acc)
       when rest != "" do
    case Native.h1_recv(engine, chunk, size) do
      {:error, reason, events} -> {:error, reason, joined([events | acc])}
      {_ok_or_wait, events} -> recv_chunks(engine, rest, size, [events | acc])
    end
  end

  defp recv_chunks(engine, last, size, acc) do
    case Native.h1_recv(engine, last, size) do
      {:error, reason, events} -> {:error, reason, joined([events | acc])}
      {ok_or_wait, events} -> {ok_or_wait, joined([events | acc])}
    end
  end

  defp joined(reversed), do: reversed |> Enum.reverse() |> Enum.concat()

  # H2Flow.Engine's read model: :fin | :more | :wait | {:error, :closed}.
  @spec read(t(), id(), non_neg_integer()) :: :fin | :more | :wait | {:error, :closed}
  def read(engine, id, length), do: Native.h1_read(engine, id, length)

  @spec read_timeout(t(), id()) :: boolean()
  def read_timeout(engine, id), do: Native.h1_read_timeout(engine, id)

  @spec discard(t(), id()) :: :ok
  def discard(engine, id), do: Native.h1_discard(engine, id)

  @spec send_headers(t(), id(), headers(), boolean()) :: :ok | {:error, :closed}
  def send_headers(engine, id, headers, end_stream?),
    do: Native.h1_send_headers(engine, id, headers, end_stream?)

  @spec reply(t(), id(), headers(), binary(), boolean()) ::
          {:ok, non_neg_integer(), boolean()} | {:error, :closed}
  def reply(engine, id, headers, body, end_stream?),
    do: Native.h1_reply(engine, id, headers, body, end_stream?)

  @spec send_body(t(), id(), binary(), boolean()) ::
          {:ok, non_neg_integer(), boolean()} | {:error, :closed}
  def send_body(engine, id, data, end_stream?) when is_binary(data),
    do: Native.h1_send_body(engine, id, data, end_stream?)

  # HTTP/1.1 has no stream to reset: the connection closes after what was written (the client
  # sees the response cut short), whatever the code.
  @spec reset_stream(t(), id(), term()) :: :ok
  def reset_stream(engine, id, _code), do: Native.h1_abort(engine, id)

  # For engines used without registered reads (tests): 100 Continue, and bytes consumed.
  @spec read_body(t(), id()) :: :ok | {:error, :closed}
  def read_body(engine, id), do: Native.h1_read_body(engine, id)

  @spec consume(t(), id(), non_neg_integer()) :: :ok
  def consume(engine, id, n), do: Native.h1_consume(engine, id, n)

  # Sends all of `data` (no room check): {:ok, bytes of the response not yet handed out}.
  @spec send_data(t(), id(), iodata(), boolean()) :: {:ok, non_neg_integer()} | {:error, :closed}
  def send_data(engine, id, data, end_stream?),
    do: Native.h1_send_data(engine, id, data, end_stream?)

  @spec abort(t(), id()) :: :ok
  def abort(engine, id), do: Native.h1_abort(engine, id)

  @spec shutdown(t()) :: :ok
  def shutdown(engine), do: Native.h1_shutdown(engine)

  @spec flush(t()) :: {binary(), [event()], :read | :wait | :done}
  def flush(engine), do: Native.h1_flush(engine)

  @spec check_timeouts(t()) :: :ok | {:error, rejection()}
  def check_timeouts(engine), do: Native.h1_check_timeouts(engine)

  # :wants_input, :done, :closing, :pipelined, :buffered_bytes, :queued_bytes, :held_bytes,
  # :deadline_ms (ms until check_timeouts/1 has something to do, or nil).
  @spec info(t()) :: map()
  def info(engine), do: Native.h1_info(engine)

  @spec stats(t()) :: map()
  def stats(engine), do: Native.h1_stats(engine)

  # Links the engine to its server's totals (H2Flow.Server.Counters): its flushes report.
  @spec report_to(t(), H2Flow.Server.Counters.t() | nil) :: :ok
  def report_to(_engine, nil), do: :ok
  def report_to(engine, %{totals: totals}), do: Native.h1_report_to(engine, totals)

  # The engine is done (closed, or handed over to HTTP/2): its last counters are reported.
  @spec close_report(t()) :: :ok
  def close_report(engine), do: Native.h1_close_report(engine)

  # What the first bytes of a cleartext connection are: :http2 (the preface), :http1 (a request
  # line), :more, or :unknown (the HTTP/2 engine answers it with GOAWAY, RFC 9113 3.4).
  @spec detect(binary(), pos_integer()) :: :http2 | :http1 | :more | :unknown
  def detect(bytes, max_request_line \\ @defaults.max_request_line),
    do: Native.h1_detect(bytes, max_request_line)

  # The HTTP/2 engine continuing an {:upgrade, ...} event, with H2Flow.Engine options; its
  # events announce stream 1 (and its body). Feed it the event's `rest`, then every read.
  @spec http2_engine(tuple(), keyword()) ::
          {:ok, H2Flow.Engine.t(), list()} | {:error, String.t()}
  def http2_engine({:upgrade, settings, headers, body, _rest}, h2_opts \\ []) do
    h2_opts
    |> H2Flow.Engine.Options.validate!()
    |> Native.h1_http2_engine(settings, headers, body)
  end

  @doc false
  # The options, complete and checked: ArgumentError names the wrong one.
  def validate!(opts) when is_list(opts) do
    H2Flow.Engine.Options.check_all!(opts, @options, @defaults, fn key ->
      "unknown HTTP/1.1 engine option #{inspect(key)}"
    end)
  end
end
