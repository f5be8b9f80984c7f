defmodule H2Flow.HTTP1.Engine do
  @moduledoc false
  # The sans-IO HTTP/1.x server engine (native/h2flow_core/src/http1) for one connection: bytes
  # in, events and bytes out, like H2Flow.Engine for HTTP/2. Used by one process at a time.
  #
  # Requests are numbered from 1 in arrival order. The caller feeds what it read with recv/2
  # (only while info/1 says :wants_input), acts on the events, answers each request with
  # send_headers/4 and send_data/4 (":status" first, as in HTTP/2), calls read_body/2 when the
  # application starts reading a body (it writes 100 Continue if the client waits for it) and
  # consume/3 for what the application took, then flush/1 once per burst: it returns the bytes to
  # write and more events (requests parsed from input held back while max_pipelined requests
  # waited, and {:writable, id} for a sender that waited). Close the socket when info/1 says
  # :done, after writing the last flush.
  #
  # Events:
  #   {:request, id, version, headers, end_stream?}  version :"HTTP/1.1" | :"HTTP/1.0"; headers
  #       as HTTP/2 has them (":method", ":scheme", ":authority" when known, ":path"), then every
  #       field line with its name lowercased
  #   {:data, id, binary, end_stream?}   request body (a sub-binary of the input when large)
  #   {:trailers, id, headers}           the body ended with these trailers
  #   {:writable, id}                    a send_data that returned >= :max_send_queue may go on
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
  @type event ::
          {:request, id(), :"HTTP/1.1" | :"HTTP/1.0", headers(), boolean()}
          | {:data, id(), binary(), boolean()}
          | {:trailers, id(), headers()}
          | {:writable, id()}
          | {:cancelled, id()}
          | {:upgrade, [{non_neg_integer(), non_neg_integer()}], headers(), binary(), binary()}

  # recv/2 feeds the NIF at most this much per call, so one call stays well under 1 ms.
  @chunk 65_536
  @kib 1024

  # {key, default, type, doc}; native/h2flow_core/src/http1/config.rs holds the same defaults.
  @options [
    {:max_request_line, 8 * @kib, {:int, 1, 0xFFFF_FFFF}, "longest request line; longer: 414"},
    {:max_headers, 100, {:int, 1, 10_000}, "most field lines (and trailer lines); more: 431"},
    {:max_header_section, 64 * @kib, {:int, 1, 0xFFFF_FFFF},
     "longest header (or trailer) section, request line included; longer: 431"},
    {:max_chunk_line, 4 * @kib, {:int, 3, 0xFFFF_FFFF},
     "longest chunk-size line with its extensions; longer: 400"},
    {:header_timeout, 10_000, {:int, 1, 0xFFFF_FFFF},
     "ms from the first byte of a head (from the start for the first) to its end; then 408, or a silent close if nothing came"},
    {:keepalive_timeout, 60_000, {:int, 1, 0xFFFF_FFFF},
     "ms without a request while nothing is in progress; then a silent close"},
    {:max_pipelined, 16, {:int, 1, 0xFFFF_FFFF},
     "requests parsed and not yet answered; at the limit nothing more is read"},
    {:max_body_buffer, 256 * @kib, {:int, 1, 0xFFFF_FFFF_FFFF},
     "unconsumed request-body bytes beyond which nothing more is read"},
    {:max_send_queue, 64 * @kib, {:int, 1, 0xFFFF_FFFF_FFFF},
     "unwritten response bytes per request beyond which the sender waits for :writable"},
    {:max_discard, 1024 * @kib, {:int, 0, 0xFFFF_FFFF_FFFF},
     "unread request-body bytes read and thrown away after an early response; more: close"},
    {:h2c_upgrade, true, :boolean, "honour Upgrade: h2c on cleartext connections"},
    {:max_upgrade_body, 64 * @kib, {:int, 0, 0xFFFF_FFFF_FFFF},
     "largest body an h2c upgrade request may carry; larger: served over HTTP/1.1"},
    {:secure, false, :boolean, "TLS connection: :scheme is https, no h2c upgrade"}
  ]

  @defaults Map.new(@options, fn {k, d, _, _} -> {k, d} end)

  @doc false
  def option_docs do
    Enum.map_join(@options, "\n", fn {key, default, _, doc} ->
      "  * `#{inspect(key)}` (default `#{inspect(default)}`): #{doc}."
    end)
  end

  @spec new(keyword()) :: {:ok, t()} | {:error, String.t()}
  def new(opts \\ []), do: opts |> validate!() |> Native.h1_new()

  @spec recv(t(), binary()) :: {:ok, [event()]} | {:error, rejection(), [event()]}
  def recv(engine, bytes) when byte_size(bytes) <= @chunk do
    Native.h1_recv(engine, bytes)
  end

  def recv(engine, bytes) when is_binary(bytes), do: recv_chunks(engine, bytes, [])

  defp recv_chunks(engine, <<chunk::binary-size(@chunk), rest::binary>>, acc) when rest != "" do
    case Native.h1_recv(engine, chunk) do
      {:ok, events} -> recv_chunks(engine, rest, [events | acc])
      {:error, reason, events} -> {:error, reason, joined([events | acc])}
    end
  end

  defp recv_chunks(engine, last, acc) do
    case Native.h1_recv(engine, last) do
      {:ok, events} -> {:ok, joined([events | acc])}
      {:error, reason, events} -> {:error, reason, joined([events | acc])}
    end
  end

  defp joined(reversed), do: reversed |> Enum.reverse() |> Enum.concat()

  @spec read_body(t(), id()) :: :ok | {:error, :closed}
  def read_body(engine, id), do: Native.h1_read_body(engine, id)

  @spec consume(t(), id(), non_neg_integer()) :: :ok
  def consume(engine, id, n), do: Native.h1_consume(engine, id, n)

  @spec send_headers(t(), id(), headers(), boolean()) :: :ok | {:error, :closed}
  def send_headers(engine, id, headers, end_stream?),
    do: Native.h1_send_headers(engine, id, headers, end_stream?)

  @spec send_data(t(), id(), iodata(), boolean()) :: {:ok, non_neg_integer()} | {:error, :closed}
  def send_data(engine, id, data, end_stream?),
    do: Native.h1_send_data(engine, id, data, end_stream?)

  @spec abort(t(), id()) :: :ok
  def abort(engine, id), do: Native.h1_abort(engine, id)

  @spec shutdown(t()) :: :ok
  def shutdown(engine), do: Native.h1_shutdown(engine)

  @spec flush(t()) :: {binary(), [event()]}
  def flush(engine), do: Native.h1_flush(engine)

  @spec check_timeouts(t()) :: :ok | {:error, rejection()}
  def check_timeouts(engine), do: Native.h1_check_timeouts(engine)

  # :wants_input, :done, :closing, :pipelined, :buffered_bytes, :queued_bytes, :held_bytes,
  # :deadline_ms (ms until check_timeouts/1 has something to do, or nil).
  @spec info(t()) :: map()
  def info(engine), do: Native.h1_info(engine)

  @spec stats(t()) :: map()
  def stats(engine), do: Native.h1_stats(engine)

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

  defp validate!(opts) when is_list(opts) do
    Enum.reduce(opts, @defaults, fn
      {key, value}, acc when is_atom(key) ->
        case List.keyfind(@options, key, 0) do
          nil -> raise ArgumentError, "unknown HTTP/1.1 engine option #{inspect(key)}"
          {^key, _, type, _} -> Map.put(acc, key, check!(key, type, value))
        end

      other, _acc ->
        raise ArgumentError, "engine options must be a keyword list, got: #{inspect(other)}"
    end)
  end

  defp check!(_key, {:int, min, max}, v) when is_integer(v) and v >= min and v <= max, do: v
  defp check!(_key, :boolean, v) when is_boolean(v), do: v

  defp check!(key, {:int, min, max}, v),
    do:
      raise(
        ArgumentError,
        "#{inspect(key)} must be an integer in #{min}..#{max}, got: #{inspect(v)}"
      )

  defp check!(key, :boolean, v),
    do: raise(ArgumentError, "#{inspect(key)} must be a boolean, got: #{inspect(v)}")
end
