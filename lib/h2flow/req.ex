defmodule H2Flow.Req do
  @moduledoc """
  A request, and the functions a handler uses to read it and answer it; modelled on
  `cowboy_req`.

  The struct is immutable like Cowboy's: functions that change what was sent (`reply/4`,
  `stream_reply/3`, `read_body/2`) return an updated request to pass on, and `c:H2Flow.Handler.init/2`
  returns the last one.

      def init(req, state) do
        case H2Flow.Req.method(req) do
          "POST" ->
            {:ok, body, req} = read_all(req, [])
            {:ok, H2Flow.Req.reply(200, %{}, body, req), state}

          _ ->
            req = H2Flow.Req.stream_reply(200, %{"content-type" => "text/plain"}, req)
            :ok = H2Flow.Req.stream_body("hello ", :nofin, req)
            :ok = H2Flow.Req.stream_body("world", :fin, req)
            {:ok, req, state}
        end
      end

      # A body of any size, 1 MB at a time (as with cowboy_req:read_body/2).
      defp read_all(req, acc) do
        case H2Flow.Req.read_body(req, length: 1_000_000) do
          {:ok, data, req} -> {:ok, IO.iodata_to_binary([acc, data]), req}
          {:more, data, req} -> read_all(req, [acc, data])
        end
      end

  Body reading is pull-based, with `cowboy_req:read_body/2`'s semantics: the bytes a handler
  asked for are its own and are credited to the peer as they are handed over; what nobody asked
  for stays bounded by the flow-control windows. Sending blocks while the stream's send queue is
  full, so a client that does not read slows its handler down instead of growing the server's
  memory.

  Calls on a stream the peer has reset return `{:error, :closed}` (reads and streamed bodies)
  or do nothing (replies); they never raise because of the peer.

  ## Answering from another process

  As with Cowboy, any process holding the request may send the response while the handler
  runs: `reply/4`, `stream_reply/3`, `stream_body/3`, `stream_trailers/2`, `inform/3` and
  `reset/2` from a `Task` the handler started work as from the handler (the connection routes
  them by stream and answers the process that called). The handler must wait for that process
  before it returns: when `init/2` returns, the stream is finished (a 204 if nothing was sent,
  the end of a streamed body), and later calls return `{:error, :closed}` or do nothing.
  The body is read by the handler's own process: `read_body/2` from another process raises
  `ArgumentError` (the connection sends the body's bytes to the handler).

      def init(req, state) do
        task =
          Task.async(fn ->
            req = H2Flow.Req.stream_reply(200, %{"content-type" => "text/plain"}, req)
            :ok = H2Flow.Req.stream_body("from a task", :fin, req)
            req
          end)

        {:ok, Task.await(task), state}
      end
  """

  alias H2Flow.Req.Fields

  @enforce_keys [:conn, :stream_id]
  defstruct [
    :conn,
    :stream_id,
    :method,
    :scheme,
    :authority,
    :path,
    :qs,
    :peer,
    :sock,
    :cert,
    :tls_info,
    :content_length,
    version: :"HTTP/2",
    headers: %{},
    has_body: false,
    body_state: :unread,
    # The whole body, when it arrived with the request: its pieces (internal).
    body: nil,
    resp: :none
  ]

  @typedoc """
  A request. Fields are read with the functions of this module; `:resp` tracks the response
  (`:none`, `:streaming` or `:sent`) and `:body_state` the body (`:unread`, `:reading`, `:done`).
  """
  @type t :: %__MODULE__{
          conn: pid(),
          stream_id: pos_integer(),
          method: binary(),
          version: version(),
          scheme: binary(),
          authority: binary(),
          path: binary(),
          qs: binary(),
          peer: {:inet.ip_address(), :inet.port_number()} | nil,
          sock: {:inet.ip_address(), :inet.port_number()} | nil,
          cert: binary() | nil,
          tls_info: keyword() | nil,
          content_length: non_neg_integer() | nil,
          headers: %{optional(binary()) => binary()},
          has_body: boolean(),
          body_state: :unread | :reading | :done,
          body: [binary()] | nil,
          resp: :none | :streaming | :sent
        }

  @type headers :: %{optional(binary()) => iodata()} | [{binary(), iodata()}]
  @typedoc "The HTTP version a request came in."
  @type version :: :"HTTP/1.0" | :"HTTP/1.1" | :"HTTP/2"
  @type status :: 200..599 | binary()

  @default_length 8_000_000
  @default_period 15_000

  @doc "The request method, e.g. `\"GET\"`."
  @spec method(t()) :: binary()
  def method(%__MODULE__{method: m}), do: m

  @doc """
  The HTTP version of the request: `:"HTTP/2"`, `:"HTTP/1.1"` or `:"HTTP/1.0"` (an h2c upgrade's
  request is `:"HTTP/2"`: it is answered over HTTP/2).
  """
  @spec version(t()) :: version()
  def version(%__MODULE__{version: v}), do: v

  @doc "The scheme, `\"http\"` or `\"https\"` (from `:scheme`)."
  @spec scheme(t()) :: binary()
  def scheme(%__MODULE__{scheme: s}), do: s

  @doc "The authority (`:authority`, else the `host` header), e.g. `\"example.com:8443\"`."
  @spec authority(t()) :: binary() | nil
  def authority(%__MODULE__{authority: a}), do: a

  @doc "The path, without the query string."
  @spec path(t()) :: binary()
  def path(%__MODULE__{path: p}), do: p

  @doc "The query string, without the `?` (`\"\"` when there is none)."
  @spec qs(t()) :: binary()
  def qs(%__MODULE__{qs: qs}), do: qs

  @doc "The query string parsed into `{key, value}` pairs (`URI.decode_query/1` rules)."
  @spec parse_qs(t()) :: [{binary(), binary()}]
  def parse_qs(%__MODULE__{qs: qs}), do: qs |> URI.query_decoder() |> Enum.to_list()

  @doc """
  The request headers as a map of lowercase names to values; repeated fields are joined with
  `", "` (`cookie` with `"; "`, RFC 9113 §8.2.3). Pseudo-headers are not included.
  """
  @spec headers(t()) :: %{optional(binary()) => binary()}
  def headers(%__MODULE__{headers: h}), do: h

  @doc "One request header (lowercase name), or `default`."
  @spec header(binary(), t(), default) :: binary() | default when default: any()
  def header(name, %__MODULE__{headers: h}, default \\ nil), do: Map.get(h, name, default)

  @doc "The peer's address and port."
  @spec peer(t()) :: {:inet.ip_address(), :inet.port_number()} | nil
  def peer(%__MODULE__{peer: p}), do: p

  @doc "The local address and port of the connection (`cowboy_req:sock/1`)."
  @spec sock(t()) :: {:inet.ip_address(), :inet.port_number()} | nil
  def sock(%__MODULE__{sock: s}), do: s

  @doc """
  The client's TLS certificate (DER), or `nil` over h2c or when the client sent none
  (`cowboy_req:cert/1`).
  """
  @spec cert(t()) :: binary() | nil
  def cert(%__MODULE__{cert: c}), do: c

  @doc """
  The parameters of the TLS session (`:ssl.connection_information/1`: protocol, cipher suite,
  SNI host name, ...), or `nil` over h2c.
  """
  @spec tls_info(t()) :: keyword() | nil
  def tls_info(%__MODULE__{tls_info: info}), do: info

  @doc """
  The HTTP/2 stream identifier of the request; over HTTP/1.1, the request's number on its
  connection (from 1, in arrival order).
  """
  @spec stream_id(t()) :: pos_integer()
  def stream_id(%__MODULE__{stream_id: id}), do: id

  @doc "Whether the request has a body (its HEADERS did not end the stream)."
  @spec has_body(t()) :: boolean()
  def has_body(%__MODULE__{has_body: b}), do: b

  @doc "The declared content-length of the body, if any."
  @spec body_length(t()) :: non_neg_integer() | nil
  def body_length(%__MODULE__{content_length: n}), do: n

  @doc """
  Reads the request body, like `cowboy_req:read_body/2`.

  Returns `{:ok, data, req}` once the whole body has arrived, if it is at most `:length` bytes
  (default 8,000,000) and arrives within `:period` milliseconds (default 15,000, or
  `:infinity`); otherwise `{:more, data, req}` as soon as at least `:length` bytes are there, or
  when the period expires (with what arrived, possibly `""`). Call it again for the rest; after
  the end it returns `{:ok, "", req}`. As in Cowboy, `data` may exceed `:length` (everything
  that had arrived is handed over at once), and a body that has arrived whole is returned with
  `:ok` whatever its size.

  The bytes a read asked for are the handler's: they are credited to the peer as they are
  handed over, so the client can send at full speed into a read of 8 MB, and what no read asked
  for stays bounded by the flow-control windows. Must be called from the handler's process.
  `{:error, :closed}` when the stream is gone.
  """
  @spec read_body(t(), keyword()) ::
          {:ok, binary(), t()} | {:more, binary(), t()} | {:error, :closed}
  def read_body(req, opts \\ [])

  def read_body(%__MODULE__{body_state: :done} = req, _opts), do: {:ok, "", req}

  def read_body(%__MODULE__{has_body: false} = req, _opts),
    do: {:ok, "", %{req | body_state: :done}}

  def read_body(%__MODULE__{} = req, opts) do
    length = Keyword.get(opts, :length, @default_length)
    period = Keyword.get(opts, :period, @default_period)

    unless is_integer(length) and length >= 0,
      do: raise(ArgumentError, ":length must be a non-negative integer, got: #{inspect(length)}")

    # A timer longer than 2^32-1 ms cannot be set: :infinity is the way to say that.
    unless (is_integer(period) and period >= 0 and period <= 0xFFFF_FFFF) or period == :infinity,
      do:
        raise(
          ArgumentError,
          ":period must be an integer in 0..4294967295 (ms) or :infinity, got: " <>
            inspect(period)
        )

    read_body(req, length, period)
  end

  # The whole body came with the request: the handler has it; the connection hands it over
  # (credits it) without an answer to wait for. Once only, even with this `req` again (as a
  # Cowboy handler may reuse its first request): the process remembers it.
  defp read_body(%__MODULE__{body: chunks, stream_id: id} = req, _length, _period)
       when is_list(chunks) do
    req = %{req | body: nil, body_state: :done}

    if Process.put({:"$h2flow_read", id}, true) do
      {:ok, "", req}
    else
      cast(req, :read_all)
      {:ok, joined(chunks), req}
    end
  end

  # The engine decides what the read gets; the connection holds the bytes until then and
  # answers with all of them in one message.
  defp read_body(%__MODULE__{stream_id: id} = req, length, period) do
    ref = make_ref()
    send(req.conn, {:"$h2flow", self(), ref, id, {:read, length, period}})

    receive do
      {^ref, :fin, chunks} ->
        {:ok, joined(chunks), %{req | body_state: :done}}

      {^ref, :more, chunks} ->
        {:more, joined(chunks), %{req | body_state: :reading}}

      {^ref, {:error, :not_handler}} ->
        raise ArgumentError,
              "read_body/2 was called by #{inspect(self())}, not by the handler of stream " <>
                "#{id}: only the handler's process reads the body (read it first, then hand " <>
                "it to other processes)"

      {^ref, {:error, _} = error} ->
        error
    end
  end

  # A body that arrived in one piece is handed on as it is (a sub-binary of the socket's
  # read), not copied into a new binary.
  defp joined([bin]) when is_binary(bin), do: bin
  defp joined(chunks), do: IO.iodata_to_binary(chunks)

  @doc """
  Sends a complete response. `headers` are lowercase names to iodata values; `content-length`
  is added when missing. Returns the updated request. The response to a `HEAD` request goes
  without its body (RFC 9110 §9.3.2), with the content-length of the body.

  Raises `ArgumentError` when a response was already sent, for a status outside 200..599
  (or a binary not starting with one), and for fields HTTP/2 does not allow: names that are
  not lowercase tokens, pseudo-header and connection-specific fields (`connection`,
  `transfer-encoding`, ...), values with NUL, CR or LF or with surrounding whitespace
  (RFC 9113 §8.2). The same checks apply to `stream_reply/3` and `stream_trailers/2`.
  """
  @spec reply(status(), headers(), iodata(), t()) :: t()
  def reply(status, headers \\ %{}, body, req)

  def reply(status, headers, body, %__MODULE__{resp: :none} = req) do
    body = IO.iodata_to_binary(body)
    status = Fields.status(status)
    headers = Fields.response(status, headers, body)
    cast(req, {:reply, status, headers, body})
    %{req | resp: :sent}
  end

  def reply(_status, _headers, _body, %__MODULE__{}) do
    raise ArgumentError, "a response was already sent on this stream"
  end

  @doc "Sends a response without a body (e.g. `reply(204, req)`)."
  @spec reply(status(), t()) :: t()
  def reply(status, %__MODULE__{} = req), do: reply(status, %{}, "", req)

  @doc """
  Starts a streamed response: sends the status and headers; the body follows with
  `stream_body/3`. Returns the updated request.
  """
  @spec stream_reply(status(), headers(), t()) :: t()
  def stream_reply(status, headers \\ %{}, req)

  def stream_reply(status, headers, %__MODULE__{resp: :none} = req) do
    cast(req, {:stream_reply, Fields.status(status), Fields.normalize(headers)})
    %{req | resp: :streaming}
  end

  def stream_reply(_status, _headers, %__MODULE__{}) do
    raise ArgumentError, "a response was already sent on this stream"
  end

  @doc """
  Sends a piece of a streamed response; `:fin` ends it. Returns once the connection accepted
  the data, which waits while the stream's send queue is full (the peer is not reading).
  `{:error, :closed}` when the stream is gone; `{:error, :timeout}` when the peer let none of
  the response go for `:send_stall_timeout` (the stream was reset).
  """
  @spec stream_body(iodata(), :fin | :nofin, t()) :: :ok | {:error, :closed | :timeout}
  def stream_body(data, is_fin, %__MODULE__{resp: :streaming} = req)
      when is_fin in [:fin, :nofin] do
    call(req, {:stream_body, IO.iodata_to_binary(data), is_fin == :fin})
  end

  def stream_body(_data, _is_fin, %__MODULE__{}) do
    raise ArgumentError, "stream_body/3 needs a response started with stream_reply/3"
  end

  @doc "Ends a streamed response with trailer fields."
  @spec stream_trailers(headers(), t()) :: :ok | {:error, :closed}
  def stream_trailers(trailers, %__MODULE__{resp: :streaming} = req) do
    call(req, {:stream_trailers, Fields.normalize(trailers)})
  end

  def stream_trailers(_trailers, %__MODULE__{}) do
    raise ArgumentError, "stream_trailers/2 needs a response started with stream_reply/3"
  end

  @doc """
  Sends an informational (1xx) response before the final one, e.g. `103` Early Hints with
  `link` fields. Any number may precede the response; `101` does not exist in HTTP/2
  (RFC 9113 §8.6). Raises `ArgumentError` once a response was sent, and for invalid fields.
  """
  @spec inform(100..199, headers(), t()) :: :ok
  def inform(status, headers \\ %{}, req)

  def inform(status, headers, %__MODULE__{resp: :none} = req)
      when is_integer(status) and status in 100..199 and status != 101 do
    cast(req, {:inform, Integer.to_string(status), Fields.normalize(headers)})
  end

  def inform(status, _headers, %__MODULE__{resp: :none}) do
    raise ArgumentError,
          "invalid informational status #{inspect(status)}: 100..199 except 101 (RFC 9113 8.6)"
  end

  def inform(_status, _headers, %__MODULE__{}) do
    raise ArgumentError, "a response was already sent on this stream"
  end

  @doc "Resets the stream (RST_STREAM), e.g. with `:cancel`. The handler should return next."
  @spec reset(t(), H2Flow.Engine.error_code()) :: :ok
  def reset(%__MODULE__{} = req, code \\ :cancel) do
    cast(req, {:reset, code})
  end

  # The connection answers calls with {ref, reply}. Its handlers are linked to it; another
  # process waits on a monitor, so that a connection that goes away answers {:error, :closed}.
  defp call(%__MODULE__{conn: conn, stream_id: id}, request) do
    ref = Process.monitor(conn)
    send(conn, {:"$h2flow", self(), ref, id, request})

    receive do
      {^ref, reply} ->
        Process.demonitor(ref, [:flush])
        reply

      {:DOWN, ^ref, _, _, _} ->
        {:error, :closed}
    end
  end

  defp cast(%__MODULE__{conn: conn, stream_id: id}, request) do
    send(conn, {:"$h2flow", self(), nil, id, request})
    :ok
  end
end
