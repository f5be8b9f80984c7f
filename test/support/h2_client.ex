defmodule H2Flow.Test.H2Client do
  @moduledoc """
  A raw HTTP/2 client for tests that assert on exact frames, independent of the NIF: frames
  are written and parsed with bit syntax here, never with `H2Flow.Frame`, so a bug in the codec
  under test cannot hide itself.

  HPACK: requests are encoded as literals without indexing and without Huffman coding
  (`encode_literal_block/1`), which needs no state; responses are decoded by a complete decoder
  (`decode_block/2`: static and dynamic table, eviction, size updates, Huffman coding).

  The client is a struct threaded through calls, like `Mint.HTTP2`: functions that read return
  `{:ok, conn, result}` or `{:error, conn, reason}`; functions that only write return `:ok`.
  Every frame read is recorded in order (`frames/1`), with the number of socket reads and of
  reads that brought at least one WINDOW_UPDATE (`stats/1`), so a test can check how the server
  batches its window updates.

      {:ok, conn} = H2Client.connect("localhost", port)
      :ok = H2Client.send_preface(conn)
      {:ok, conn, id} = H2Client.request(conn, "POST", "/echo", [{"content-length", "5"}], "hello")
      {:ok, conn, %{status: 200, body: "hello"}} = H2Client.read_response(conn, id)
      %{window_updates: %{connection: 1, stream: 0}} = H2Client.stats(conn)

  ## Frames

  `recv_frame/2` returns frames as on the wire: `{type, flags, stream_id, payload}`, `type`
  an atom (`:data`, `:headers`, `:priority`, `:rst_stream`, `:settings`, `:push_promise`,
  `:ping`, `:goaway`, `:window_update`, `:continuation`) or the integer of an unknown type.

  `recv/2` returns them parsed, with header blocks reassembled from CONTINUATION frames and
  decoded:

    * `{:data, stream_id, data, end_stream?}` (padding removed)
    * `{:headers, stream_id, headers, end_stream?}`
    * `{:push_promise, stream_id, promised_stream_id, headers}`
    * `{:priority, stream_id, exclusive?, dependency, weight}`
    * `{:rst_stream, stream_id, code}`
    * `{:settings, ack?, [{name_or_id, value}]}`
    * `{:ping, ack?, data}`
    * `{:goaway, last_stream_id, code, debug_data}`
    * `{:window_update, stream_id, increment}`
    * `{:continuation, stream_id, end_headers?, fragment}` (only one that follows no header block)
    * `{:unknown, type, flags, stream_id, payload}`

  Error codes are snake_case atoms (`:refused_stream`), or integers for undefined codes.

  Every header block is decoded as soon as it is read, whichever function reads it, so the
  dynamic table stays in step with the server's encoder.

  ## Options of `connect/3`

    * `:tls` (default `false`): TLS with ALPN `h2`, certificate not verified.
    * `:timeout` (default 5000): connect timeout in milliseconds.
    * `:auto_ack` (default `[:settings]`): what `read_response/3` and `recv_until/3` answer on
      their own: `:settings` (SETTINGS ACK) and/or `:ping` (PING ACK).
    * `:header_table_size` (default 4096): the SETTINGS_HEADER_TABLE_SIZE the test advertises;
      the HPACK decoder rejects size updates above it.
    * `:socket_opts` (default `[]`): more `:gen_tcp`/`:ssl` options, e.g. `recbuf: 4096` for a
      client whose receive buffer fills quickly, or `send_timeout: 1000`.
  """

  import Bitwise

  alias H2Flow.Test.H2Client.HPACK

  defstruct [
    :socket,
    :transport,
    :host,
    :port,
    :scheme,
    auto_ack: [:settings],
    buffer: "",
    queue: :queue.new(),
    received: [],
    block: nil,
    table: nil,
    stash: %{},
    next_stream_id: 1,
    reads: 0,
    reads_with_window_update: 0
  ]

  @type t :: %__MODULE__{}
  @type frame :: {atom() | 0..255, 0..255, non_neg_integer(), binary()}
  @type headers :: [{binary(), binary()}]
  @preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
  @max_frame 16_384

  @types %{
    0 => :data,
    1 => :headers,
    2 => :priority,
    3 => :rst_stream,
    4 => :settings,
    5 => :push_promise,
    6 => :ping,
    7 => :goaway,
    8 => :window_update,
    9 => :continuation
  }
  @type_ids Map.new(@types, fn {k, v} -> {v, k} end)

  @codes %{
    0x0 => :no_error,
    0x1 => :protocol_error,
    0x2 => :internal_error,
    0x3 => :flow_control_error,
    0x4 => :settings_timeout,
    0x5 => :stream_closed,
    0x6 => :frame_size_error,
    0x7 => :refused_stream,
    0x8 => :cancel,
    0x9 => :compression_error,
    0xA => :connect_error,
    0xB => :enhance_your_calm,
    0xC => :inadequate_security,
    0xD => :http_1_1_required
  }
  @code_ids Map.new(@codes, fn {k, v} -> {v, k} end)

  @settings %{
    1 => :header_table_size,
    2 => :enable_push,
    3 => :max_concurrent_streams,
    4 => :initial_window_size,
    5 => :max_frame_size,
    6 => :max_header_list_size,
    8 => :enable_connect_protocol,
    9 => :no_rfc7540_priorities
  }
  @setting_ids Map.new(@settings, fn {k, v} -> {v, k} end)

  @end_stream 0x1
  @ack 0x1
  @end_headers 0x4
  @padded 0x8
  @priority 0x20

  ## Connecting and writing

  @doc "Opens a connection (see the moduledoc for options). Nothing is sent yet."
  @spec connect(String.t() | charlist(), :inet.port_number(), keyword()) ::
          {:ok, t()} | {:error, term()}
  def connect(host, port, opts \\ []) do
    host = to_charlist(host)
    timeout = Keyword.get(opts, :timeout, 5000)
    # A large user-level buffer: recv/3 returns what arrived, not 1,460-byte pieces.
    base =
      [:binary, active: false, packet: :raw, nodelay: true, buffer: 1_048_576] ++
        Keyword.get(opts, :socket_opts, [])

    result =
      if Keyword.get(opts, :tls, false) do
        tls = [alpn_advertised_protocols: ["h2"], verify: :verify_none]

        with {:ok, socket} <- :ssl.connect(host, port, base ++ tls, timeout) do
          case :ssl.negotiated_protocol(socket) do
            {:ok, "h2"} ->
              {:ok, :ssl, socket}

            other ->
              :ssl.close(socket)
              {:error, {:alpn, other}}
          end
        end
      else
        with {:ok, socket} <- :gen_tcp.connect(host, port, base, timeout),
             do: {:ok, :gen_tcp, socket}
      end

    with {:ok, transport, socket} <- result do
      {:ok,
       %__MODULE__{
         socket: socket,
         transport: transport,
         host: to_string(host),
         port: port,
         scheme: if(transport == :ssl, do: "https", else: "http"),
         auto_ack: Keyword.get(opts, :auto_ack, [:settings]),
         table: new_table(Keyword.get(opts, :header_table_size, 4096))
       }}
    end
  end

  @doc "Closes the socket."
  @spec close(t()) :: :ok
  def close(%__MODULE__{transport: transport, socket: socket}) do
    transport.close(socket)
    :ok
  end

  @doc "Writes raw bytes."
  @spec send_raw(t(), iodata()) :: :ok | {:error, term()}
  def send_raw(%__MODULE__{transport: transport, socket: socket}, bytes),
    do: transport.send(socket, bytes)

  @doc "Writes the client connection preface and a SETTINGS frame with `settings`."
  @spec send_preface(t(), [{atom() | non_neg_integer(), non_neg_integer()}]) ::
          :ok | {:error, term()}
  def send_preface(conn, settings \\ []) do
    send_raw(conn, [@preface, settings_frame(settings)])
  end

  @doc "Writes one frame; `type` is a frame type atom or an integer."
  @spec send_frame(t(), atom() | 0..255, 0..255, non_neg_integer(), iodata()) ::
          :ok | {:error, term()}
  def send_frame(conn, type, flags, stream_id, payload) do
    send_raw(conn, frame(type, flags, stream_id, payload))
  end

  @doc """
  Writes a HEADERS frame with `headers` encoded by `encode_literal_block/1`. Options:
  `:end_headers` (default `true`), `:priority` (`{exclusive?, dependency, weight}`),
  `:padding` (pad length).
  """
  @spec send_headers(t(), pos_integer(), headers(), boolean(), keyword()) ::
          :ok | {:error, term()}
  def send_headers(conn, stream_id, headers, end_stream?, opts \\ []) do
    send_frame_raw_block(conn, stream_id, encode_literal_block(headers), end_stream?, opts)
  end

  @doc "Like `send_headers/5` with an already encoded header block fragment."
  @spec send_headers_block(t(), pos_integer(), iodata(), boolean(), keyword()) ::
          :ok | {:error, term()}
  def send_headers_block(conn, stream_id, block, end_stream?, opts \\ []),
    do: send_frame_raw_block(conn, stream_id, block, end_stream?, opts)

  defp send_frame_raw_block(conn, stream_id, block, end_stream?, opts) do
    flags =
      flag(end_stream?, @end_stream) ||| flag(Keyword.get(opts, :end_headers, true), @end_headers)

    {flags, prio} =
      case Keyword.get(opts, :priority) do
        nil -> {flags, ""}
        {e, dep, weight} -> {flags ||| @priority, <<bool(e)::1, dep::31, weight::8>>}
      end

    {flags, payload} = pad(flags, [prio, block], Keyword.get(opts, :padding))
    send_frame(conn, :headers, flags, stream_id, payload)
  end

  @doc "Writes a CONTINUATION frame."
  @spec send_continuation(t(), pos_integer(), iodata(), boolean()) :: :ok | {:error, term()}
  def send_continuation(conn, stream_id, fragment, end_headers?) do
    send_frame(conn, :continuation, flag(end_headers?, @end_headers), stream_id, fragment)
  end

  @doc "Writes one DATA frame. Option `:padding` (pad length)."
  @spec send_data(t(), pos_integer(), iodata(), boolean(), keyword()) :: :ok | {:error, term()}
  def send_data(conn, stream_id, data, end_stream?, opts \\ []) do
    {flags, payload} = pad(flag(end_stream?, @end_stream), data, Keyword.get(opts, :padding))
    send_frame(conn, :data, flags, stream_id, payload)
  end

  @doc "Writes a PRIORITY frame."
  @spec send_priority(t(), pos_integer(), boolean(), non_neg_integer(), 0..255) ::
          :ok | {:error, term()}
  def send_priority(conn, stream_id, exclusive?, dependency, weight) do
    send_frame(conn, :priority, 0, stream_id, <<bool(exclusive?)::1, dependency::31, weight::8>>)
  end

  @doc "Writes a RST_STREAM frame; `code` is an atom or an integer."
  @spec send_rst_stream(t(), non_neg_integer(), atom() | non_neg_integer()) ::
          :ok | {:error, term()}
  def send_rst_stream(conn, stream_id, code) do
    send_frame(conn, :rst_stream, 0, stream_id, <<code_id(code)::32>>)
  end

  @doc "Writes a SETTINGS frame; parameters by name (`:initial_window_size`) or integer id."
  @spec send_settings(t(), [{atom() | non_neg_integer(), non_neg_integer()}]) ::
          :ok | {:error, term()}
  def send_settings(conn, params), do: send_raw(conn, settings_frame(params))

  @doc "Writes a SETTINGS frame with ACK."
  @spec send_settings_ack(t()) :: :ok | {:error, term()}
  def send_settings_ack(conn), do: send_frame(conn, :settings, @ack, 0, "")

  @doc "Writes a PING frame (`ack?` sets the ACK flag)."
  @spec send_ping(t(), <<_::64>>, boolean()) :: :ok | {:error, term()}
  def send_ping(conn, data \\ <<0::64>>, ack? \\ false) do
    send_frame(conn, :ping, flag(ack?, @ack), 0, data)
  end

  @doc "Writes a GOAWAY frame."
  @spec send_goaway(t(), non_neg_integer(), atom() | non_neg_integer(), iodata()) ::
          :ok | {:error, term()}
  def send_goaway(conn, last_stream_id, code, debug \\ "") do
    send_frame(conn, :goaway, 0, 0, [<<0::1, last_stream_id::31, code_id(code)::32>>, debug])
  end

  @doc "Writes a WINDOW_UPDATE frame (stream 0: the connection)."
  @spec send_window_update(t(), non_neg_integer(), non_neg_integer()) :: :ok | {:error, term()}
  def send_window_update(conn, stream_id, increment) do
    send_frame(conn, :window_update, 0, stream_id, <<0::1, increment::31>>)
  end

  @doc """
  Sends a request on the next odd stream id: HEADERS with `:method`, `:scheme`, `:authority`,
  `:path` and `headers`, then `body` in DATA frames of at most 16,384 bytes (`nil` or `""`: no
  body, END_STREAM on HEADERS). Flow control is not tracked: a body must fit in the server's
  initial windows, or the test sends it itself with `send_data/5`.
  """
  @spec request(t(), String.t(), String.t(), headers(), iodata() | nil) ::
          {:ok, t(), pos_integer()} | {:error, t(), term()}
  def request(conn, method, path, headers \\ [], body \\ nil) do
    id = conn.next_stream_id
    body = if body, do: IO.iodata_to_binary(body), else: ""

    pseudo = [
      {":method", method},
      {":scheme", conn.scheme},
      {":authority", "#{conn.host}:#{conn.port}"},
      {":path", path}
    ]

    bytes = [
      frame(
        :headers,
        @end_headers ||| flag(body == "", @end_stream),
        id,
        encode_literal_block(pseudo ++ headers)
      ),
      data_frames(id, body)
    ]

    case send_raw(conn, bytes) do
      :ok -> {:ok, %{conn | next_stream_id: id + 2}, id}
      {:error, reason} -> {:error, conn, reason}
    end
  end

  defp data_frames(_id, ""), do: []

  defp data_frames(id, <<chunk::binary-size(@max_frame), rest::binary>>) when rest != "",
    do: [frame(:data, 0, id, chunk) | data_frames(id, rest)]

  defp data_frames(id, last), do: [frame(:data, @end_stream, id, last)]

  @doc """
  One frame's bytes, for tests that build a burst of frames and write it at once; `type` is a
  frame type atom or an integer, `flags` the flag bits (`0x1` END_STREAM or ACK, `0x4`
  END_HEADERS).
  """
  @spec encode_frame(atom() | 0..255, 0..255, non_neg_integer(), iodata()) :: iodata()
  def encode_frame(type, flags, stream_id, payload), do: frame(type, flags, stream_id, payload)

  defp frame(type, flags, stream_id, payload) do
    type = if is_atom(type), do: Map.fetch!(@type_ids, type), else: type
    [<<IO.iodata_length(payload)::24, type::8, flags::8, 0::1, stream_id::31>>, payload]
  end

  defp settings_frame(params) do
    frame(:settings, 0, 0, for({id, value} <- params, do: <<setting_id(id)::16, value::32>>))
  end

  defp pad(flags, payload, nil), do: {flags, payload}
  defp pad(flags, payload, n), do: {flags ||| @padded, [n, payload, :binary.copy(<<0>>, n)]}

  defp flag(true, bit), do: bit
  defp flag(false, _bit), do: 0

  defp bool(true), do: 1
  defp bool(false), do: 0

  defp code_id(code) when is_integer(code), do: code
  defp code_id(code), do: Map.fetch!(@code_ids, code)

  defp setting_id(id) when is_integer(id), do: id
  defp setting_id(id), do: Map.fetch!(@setting_ids, id)

  ## Reading

  @doc "Reads the next frame as on the wire (see the moduledoc)."
  @spec recv_frame(t(), timeout()) :: {:ok, t(), frame()} | {:error, t(), term()}
  def recv_frame(conn, timeout \\ 5000) do
    with {:ok, conn, {raw, _decoded}} <- next_item(conn, timeout), do: {:ok, conn, raw}
  end

  @doc "Reads the next frame, parsed; header blocks come whole and decoded (see the moduledoc)."
  @spec recv(t(), timeout()) :: {:ok, t(), tuple()} | {:error, t(), term()}
  def recv(conn, timeout \\ 5000) do
    with {:ok, conn, item} <- next_item(conn, timeout), do: parse_item(conn, item, timeout)
  end

  @doc """
  Reads parsed frames until `fun` returns true for one; returns them all in order, the
  matching one last. Answers SETTINGS (and PING) as `:auto_ack` says.
  """
  @spec recv_until(t(), (tuple() -> boolean()), timeout()) ::
          {:ok, t(), [tuple()]} | {:error, t(), term()}
  def recv_until(conn, fun, timeout \\ 5000), do: recv_until(conn, fun, timeout, [])

  defp recv_until(conn, fun, timeout, acc) do
    with {:ok, conn, frame} <- recv(conn, timeout) do
      auto_ack(conn, frame)

      if fun.(frame),
        do: {:ok, conn, Enum.reverse([frame | acc])},
        else: recv_until(conn, fun, timeout, [frame | acc])
    end
  end

  @doc """
  Reads the response of a stream: `%{status: integer, headers: headers, body: binary,
  trailers: headers}` (1xx responses are skipped). SETTINGS are acknowledged on the way (and
  PINGs with `auto_ack: [:ping]`). Frames of other streams are kept for their own
  `read_response/3`. Errors: `{:rst_stream, code}`, `{:goaway, last_stream_id, code, debug}`
  when the stream is above the GOAWAY's last stream id, `:timeout`, `:closed`.
  """
  @spec read_response(t(), pos_integer(), timeout()) ::
          {:ok, t(),
           %{status: integer(), headers: headers(), body: binary(), trailers: headers()}}
          | {:error, t(), term()}
  def read_response(conn, stream_id, timeout \\ 5000) do
    {stashed, stash} = Map.pop(conn.stash, stream_id, [])
    conn = %{conn | stash: stash}

    response(conn, stream_id, timeout, Enum.reverse(stashed), %{
      headers: nil,
      body: [],
      trailers: []
    })
  end

  defp response(conn, id, timeout, [frame | stashed], acc) do
    case response_frame(conn, id, frame, acc) do
      {:more, conn, acc} -> response(conn, id, timeout, stashed, acc)
      done -> done
    end
  end

  defp response(conn, id, timeout, [], acc) do
    with {:ok, conn, frame} <- recv(conn, timeout) do
      auto_ack(conn, frame)

      case response_frame(conn, id, frame, acc) do
        {:more, conn, acc} -> response(conn, id, timeout, [], acc)
        done -> done
      end
    end
  end

  defp response_frame(conn, id, {:headers, id, headers, end_stream?}, acc) do
    acc =
      case {acc.headers, headers} do
        {nil, [{":status", <<?1, _::binary>>} | _]} -> acc
        {nil, _} -> %{acc | headers: headers}
        _ -> %{acc | trailers: headers}
      end

    finish(conn, acc, end_stream?)
  end

  defp response_frame(conn, id, {:data, id, data, end_stream?}, acc),
    do: finish(conn, %{acc | body: [acc.body | data]}, end_stream?)

  defp response_frame(conn, id, {:rst_stream, id, code}, _acc),
    do: {:error, conn, {:rst_stream, code}}

  defp response_frame(conn, id, {:goaway, last, code, debug}, _acc) when id > last,
    do: {:error, conn, {:goaway, last, code, debug}}

  defp response_frame(conn, id, frame, acc) do
    case stream_of(frame) do
      other when other in [0, id] ->
        {:more, conn, acc}

      other ->
        {:more, %{conn | stash: Map.update(conn.stash, other, [frame], &[frame | &1])}, acc}
    end
  end

  defp finish(conn, acc, false), do: {:more, conn, acc}

  defp finish(conn, %{headers: headers} = acc, true) do
    case headers do
      [{":status", status} | rest] ->
        {:ok, conn,
         %{
           status: String.to_integer(status),
           headers: rest,
           body: IO.iodata_to_binary(acc.body),
           trailers: acc.trailers
         }}

      other ->
        {:error, conn, {:bad_response_headers, other}}
    end
  end

  defp stream_of({:settings, _, _}), do: 0
  defp stream_of({:ping, _, _}), do: 0
  defp stream_of({:goaway, _, _, _}), do: 0
  defp stream_of({:unknown, _, _, id, _}), do: id
  defp stream_of(frame), do: elem(frame, 1)

  defp auto_ack(conn, {:settings, false, _}) do
    if :settings in conn.auto_ack, do: send_settings_ack(conn)
  end

  defp auto_ack(conn, {:ping, false, data}) do
    if :ping in conn.auto_ack, do: send_ping(conn, data, true)
  end

  defp auto_ack(_conn, _frame), do: :ok

  @doc "Every frame read so far, as on the wire, in order."
  @spec frames(t()) :: [frame()]
  def frames(conn), do: Enum.reverse(conn.received)

  @doc """
  `%{frames: n, reads: n, reads_with_window_update: n, window_updates: %{connection: n,
  stream: n}}`: frames read, socket reads, socket reads that completed at least one
  WINDOW_UPDATE frame, and WINDOW_UPDATE frames by kind.
  """
  @spec stats(t()) :: map()
  def stats(conn) do
    wus = for {:window_update, _, id, _} <- conn.received, do: id
    conn_wus = Enum.count(wus, &(&1 == 0))

    %{
      frames: length(conn.received),
      reads: conn.reads,
      reads_with_window_update: conn.reads_with_window_update,
      window_updates: %{connection: conn_wus, stream: length(wus) - conn_wus}
    }
  end

  # The queue holds {raw_frame, decoded_headers | nil}, filled one socket read at a time.
  defp next_item(conn, timeout) do
    case :queue.out(conn.queue) do
      {{:value, item}, queue} ->
        {:ok, %{conn | queue: queue}, item}

      {:empty, _} ->
        case conn.transport.recv(conn.socket, 0, timeout) do
          {:ok, bytes} ->
            case ingest(%{conn | reads: conn.reads + 1}, conn.buffer <> bytes) do
              {:ok, conn} -> next_item(conn, timeout)
              {:error, conn, reason} -> {:error, conn, reason}
            end

          {:error, reason} ->
            {:error, conn, reason}
        end
    end
  end

  defp ingest(conn, bytes) do
    {frames, rest} = take_frames(bytes, [])
    conn = %{conn | buffer: rest}

    if Enum.any?(frames, &match?({:window_update, _, _, _}, &1)),
      do: process(%{conn | reads_with_window_update: conn.reads_with_window_update + 1}, frames),
      else: process(conn, frames)
  end

  defp take_frames(
         <<len::24, type::8, flags::8, _::1, id::31, payload::binary-size(len), rest::binary>>,
         acc
       ) do
    take_frames(rest, [{Map.get(@types, type, type), flags, id, payload} | acc])
  end

  defp take_frames(rest, acc), do: {Enum.reverse(acc), rest}

  defp process(conn, []), do: {:ok, conn}

  defp process(conn, [raw | frames]) do
    conn = %{conn | received: [raw | conn.received]}

    case block(conn, raw) do
      {:ok, conn, decoded} ->
        process(%{conn | queue: :queue.in({raw, decoded}, conn.queue)}, frames)

      {:error, conn, reason} ->
        {:error, conn, reason}
    end
  end

  # Header blocks are decoded as they complete, in the order the server encoded them.
  defp block(%{block: nil} = conn, {type, flags, _id, payload})
       when type in [:headers, :push_promise] do
    with {:ok, fragment} <- fragment(type, flags, payload) do
      if (flags &&& @end_headers) != 0,
        do: decode(conn, fragment),
        else: {:ok, %{conn | block: [fragment]}, nil}
    else
      :error -> {:error, conn, {:malformed, type}}
    end
  end

  defp block(%{block: acc} = conn, {:continuation, flags, _id, payload}) when acc != nil do
    if (flags &&& @end_headers) != 0,
      do: decode(%{conn | block: nil}, IO.iodata_to_binary([acc, payload])),
      else: {:ok, %{conn | block: [acc, payload]}, nil}
  end

  defp block(conn, _raw), do: {:ok, conn, nil}

  defp decode(conn, fragment) do
    case decode_block(conn.table, fragment) do
      {:ok, headers, table} -> {:ok, %{conn | table: table, block: nil}, headers}
      {:error, reason} -> {:error, conn, {:hpack, reason}}
    end
  end

  # The header block fragment of HEADERS or PUSH_PROMISE (with the promised id in front).
  defp fragment(type, flags, payload) do
    with {:ok, content} <- unpad(flags, payload) do
      case {type, (flags &&& @priority) != 0, content} do
        {:headers, true, <<_::40, fragment::binary>>} -> {:ok, fragment}
        {:headers, false, fragment} -> {:ok, fragment}
        {:push_promise, _, <<_::32, fragment::binary>>} -> {:ok, fragment}
        _ -> :error
      end
    end
  end

  defp unpad(flags, payload) when (flags &&& @padded) == 0, do: {:ok, payload}

  defp unpad(_flags, <<n::8, rest::binary>>) when n <= byte_size(rest),
    do: {:ok, binary_part(rest, 0, byte_size(rest) - n)}

  defp unpad(_flags, _payload), do: :error

  defp parse_item(conn, {{:headers, flags, id, _}, nil}, timeout),
    do:
      continue_block(conn, timeout, fn headers ->
        {:headers, id, headers, (flags &&& @end_stream) != 0}
      end)

  defp parse_item(conn, {{:headers, flags, id, _}, headers}, _timeout),
    do: {:ok, conn, {:headers, id, headers, (flags &&& @end_stream) != 0}}

  defp parse_item(conn, {{:push_promise, flags, id, payload}, decoded}, timeout) do
    promised =
      case unpad(flags, payload) do
        {:ok, <<_::1, promised::31, _::binary>>} -> promised
        _ -> nil
      end

    case decoded do
      nil -> continue_block(conn, timeout, &{:push_promise, id, promised, &1})
      headers -> {:ok, conn, {:push_promise, id, promised, headers}}
    end
  end

  defp parse_item(conn, {raw, _}, _timeout) do
    case parse(raw) do
      {:ok, frame} -> {:ok, conn, frame}
      :error -> {:error, conn, {:malformed, raw}}
    end
  end

  defp continue_block(conn, timeout, build) do
    case next_item(conn, timeout) do
      {:ok, conn, {{:continuation, _, _, _}, nil}} -> continue_block(conn, timeout, build)
      {:ok, conn, {{:continuation, _, _, _}, headers}} -> {:ok, conn, build.(headers)}
      {:ok, conn, {raw, _}} -> {:error, conn, {:expected_continuation, raw}}
      error -> error
    end
  end

  defp parse({:data, flags, id, payload}) do
    with {:ok, data} <- unpad(flags, payload),
         do: {:ok, {:data, id, data, (flags &&& @end_stream) != 0}}
  end

  defp parse({:priority, _, id, <<e::1, dep::31, weight::8>>}),
    do: {:ok, {:priority, id, e == 1, dep, weight}}

  defp parse({:rst_stream, _, id, <<code::32>>}), do: {:ok, {:rst_stream, id, code_name(code)}}

  defp parse({:settings, flags, 0, payload}) when rem(byte_size(payload), 6) == 0 do
    params = for <<id::16, value::32 <- payload>>, do: {Map.get(@settings, id, id), value}
    {:ok, {:settings, (flags &&& @ack) != 0, params}}
  end

  defp parse({:ping, flags, 0, <<data::binary-size(8)>>}),
    do: {:ok, {:ping, (flags &&& @ack) != 0, data}}

  defp parse({:goaway, _, 0, <<_::1, last::31, code::32, debug::binary>>}),
    do: {:ok, {:goaway, last, code_name(code), debug}}

  defp parse({:window_update, _, id, <<_::1, inc::31>>}), do: {:ok, {:window_update, id, inc}}

  defp parse({:continuation, flags, id, payload}),
    do: {:ok, {:continuation, id, (flags &&& @end_headers) != 0, payload}}

  defp parse({type, flags, id, payload}) when is_integer(type),
    do: {:ok, {:unknown, type, flags, id, payload}}

  defp parse(_), do: :error

  defp code_name(code), do: Map.get(@codes, code, code)

  ## HPACK, in H2Flow.Test.H2Client.HPACK

  @doc "See `H2Flow.Test.H2Client.HPACK.encode_literal_block/1`."
  @spec encode_literal_block(headers()) :: binary()
  defdelegate encode_literal_block(headers), to: HPACK

  @doc "See `H2Flow.Test.H2Client.HPACK.new_table/1`."
  @spec new_table(non_neg_integer()) :: HPACK.table()
  defdelegate new_table(limit \\ 4096), to: HPACK

  @doc "See `H2Flow.Test.H2Client.HPACK.decode_block/2`."
  @spec decode_block(HPACK.table(), binary()) ::
          {:ok, headers(), HPACK.table()} | {:error, term()}
  defdelegate decode_block(table, block), to: HPACK
end
