defmodule H2Flow.Plug.Adapter do
  # Owns the Plug.Conn.Adapter callbacks: a %Plug.Conn{} on top of an H2Flow.Req.
  @moduledoc """
  The `Plug.Conn.Adapter` of h2flow: the `conn.adapter` of every `Plug.Conn` that a server
  started with `plug:` hands to its plug (see `H2Flow`, option `:plug`). Applications use
  `Plug.Conn` and never call this module themselves:

      defmodule MyApp.Hello do
        def init(opts), do: opts

        def call(conn, _opts) do
          {:ok, body, conn} = Plug.Conn.read_body(conn)
          protocol = Plug.Conn.get_http_protocol(conn)
          Plug.Conn.send_resp(conn, 200, "got \#{byte_size(body)} bytes over \#{protocol}")
        end
      end

      {:ok, server} = H2Flow.start_link(plug: MyApp.Hello, port: 0)

  h2flow does not depend on Plug: this module compiles without it and calls Plug only when an
  application that has Plug runs it. How the callbacks map onto `H2Flow.Req`:

    * `read_req_body/2`: `:length` (default 8,000,000) bytes at most per call, read
      `:read_length` (default 1,000,000) at a time, each read waiting at most `:read_timeout`
      (default 15,000 ms). A read that got nothing in `:read_timeout` returns
      `{:error, :timeout}` (`Plug.Parsers` answers 408). The body is buffered by the connection
      within the flow-control windows, as for `H2Flow.Req.read_body/2`.
    * `send_resp/4` is `H2Flow.Req.reply/4`; `send_chunked/3` and `chunk/2` are
      `H2Flow.Req.stream_reply/3` and `H2Flow.Req.stream_body/3`, so `chunk/2` blocks while
      the stream's send queue is full (a client that does not read slows the plug down).
    * `send_file/6` reads the file 128 KiB at a time and streams it the same way: memory stays
      bounded whatever the file's size (there is no sendfile through HTTP/2 framing).
    * `inform/3` sends a 1xx response (`H2Flow.Req.inform/3`), e.g. 103 Early Hints.
    * `push/3` returns `{:error, :not_supported}` (h2flow never sends PUSH_PROMISE);
      `upgrade/3` returns `{:error, :not_supported}` and logs why: h2flow does not implement
      WebSockets yet (over HTTP/1.1 nor over HTTP/2, which needs extended CONNECT, RFC 8441).
    * `get_http_protocol/1` is the request's version, `H2Flow.Req.version/1` (`:"HTTP/2"`,
      `:"HTTP/1.1"` or `:"HTTP/1.0"`); `get_peer_data/1`, `get_sock_data/1` and
      `get_ssl_data/1` come from the connection's socket (`H2Flow.Req.peer/1`,
      `H2Flow.Req.sock/1`, `H2Flow.Req.cert/1`, `H2Flow.Req.tls_info/1`).

  Connection-specific response fields (`connection`, `keep-alive`, `transfer-encoding`,
  `upgrade`, ...), which HTTP/2 forbids (RFC 9113 §8.2.2), are dropped from responses, over
  HTTP/1.1 too (there the engine frames the response and decides whether the connection
  persists). No body is
  sent for `HEAD` requests and 204 or 304 responses.
  """

  require Logger

  alias H2Flow.Req

  # Without Plug in the build these are runtime calls into the application's Plug.
  @compile {:no_warn_undefined, [Plug.Conn.Adapter]}

  @file_chunk 131_072
  @connection_specific ~w(connection proxy-connection keep-alive transfer-encoding upgrade te)

  defstruct [:req, rest: nil]

  @typedoc """
  The adapter's payload: the request, and body bytes read from the connection beyond what a
  `read_req_body/2` call could return (its `:length`), handed out by the next call (`:ok`
  when they end the body).
  """
  @type t :: %__MODULE__{req: Req.t(), rest: {:ok | :more, binary()} | nil}

  # The response of the process so far, for the error path of H2Flow.Plug.Handler (the conn
  # that knew it is lost when the plug raises): nil, :sent or :streaming.
  @resp_key {__MODULE__, :resp}

  @doc """
  Builds the `Plug.Conn` of a request: scheme from the transport (`https` over TLS), host and
  port from `:authority` (else the `host` field; the port defaults to the scheme's), path and
  query string from `:path`, lower-case request fields with cookie crumbs joined with `"; "`.
  """
  @spec conn(Req.t()) :: struct()
  def conn(%Req{} = req) do
    {scheme, default_port} = if req.tls_info, do: {"https", 443}, else: {"http", 80}
    {host, port} = host_and_port(req.authority || "", default_port)
    uri = %URI{scheme: scheme, host: host, port: port, path: req.path, query: req.qs}
    {ip, _port} = req.peer || {{0, 0, 0, 0}, 0}
    headers = Map.to_list(req.headers)
    Plug.Conn.Adapter.conn({__MODULE__, %__MODULE__{req: req}}, req.method, uri, ip, headers)
  end

  defp host_and_port("[" <> _ = authority, default_port) do
    case :binary.split(authority, "]:") do
      [host, port] -> {host <> "]", port(port, default_port)}
      [host] -> {host, default_port}
    end
  end

  defp host_and_port(authority, default_port) do
    case :binary.split(authority, ":") do
      [host, port] -> {host, port(port, default_port)}
      [host] -> {host, default_port}
    end
  end

  defp port(port, default_port) do
    case Integer.parse(port) do
      {n, ""} when n in 0..65_535 -> n
      _ -> default_port
    end
  end

  @doc false
  # H2Flow.Plug.Handler: what was sent before the plug raised (nil, :sent or :streaming).
  def response_started, do: Process.get(@resp_key)

  # --- request body ----------------------------------------------------------------------

  @doc "Reads the request body (`Plug.Conn.read_body/2`); see the module doc for the options."
  @spec read_req_body(t(), keyword()) ::
          {:ok, binary(), t()} | {:more, binary(), t()} | {:error, term()}
  def read_req_body(%__MODULE__{} = adapter, opts) do
    length = Keyword.get(opts, :length, 8_000_000)

    limits =
      {length, Keyword.get(opts, :read_length, 1_000_000),
       Keyword.get(opts, :read_timeout, 15_000)}

    case adapter.rest do
      nil -> read(%{adapter | rest: nil}, limits, [], 0)
      {:ok, data} -> deliver(adapter, :ok, data, length)
      {:more, data} when byte_size(data) >= length -> deliver(adapter, :more, data, length)
      {:more, data} -> read(%{adapter | rest: nil}, limits, [data], byte_size(data))
    end
  end

  defp read(adapter, {length, read_length, read_timeout} = limits, acc, got) do
    want = max(min(read_length, length - got), 1)

    case Req.read_body(adapter.req, length: want, period: read_timeout) do
      {:ok, data, req} ->
        deliver(%{adapter | req: req}, :ok, [acc | data], length)

      # Nothing arrived within :read_timeout.
      {:more, "", _req} when got == 0 ->
        {:error, :timeout}

      {:more, "", req} ->
        {:more, joined(acc), %{adapter | req: req}}

      {:more, data, req} when got + byte_size(data) >= length ->
        deliver(%{adapter | req: req}, :more, [acc | data], length)

      {:more, data, req} ->
        read(%{adapter | req: req}, limits, [acc | data], got + byte_size(data))

      {:error, _} = error ->
        error
    end
  end

  # At most `length` bytes go back (Plug's :length); the rest waits in `rest` for the next call
  # (a body that came whole with its request can be larger than :length).
  defp deliver(adapter, tag, data, length) do
    data = joined(data)

    case data do
      <<head::binary-size(length), rest::binary>> when rest != "" ->
        {:more, head, %{adapter | rest: {tag, rest}}}

      _ ->
        {tag, data, %{adapter | rest: nil}}
    end
  end

  # One piece is handed on as it is (no copy of a body that came in one piece).
  defp joined([[] | data]) when is_binary(data), do: data
  defp joined(data) when is_binary(data), do: data
  defp joined(iodata), do: IO.iodata_to_binary(iodata)

  # --- responses -------------------------------------------------------------------------

  @doc "Sends a whole response (`Plug.Conn.send_resp/1`)."
  @spec send_resp(t(), non_neg_integer(), [{binary(), binary()}], iodata()) :: {:ok, nil, t()}
  def send_resp(%__MODULE__{req: req} = adapter, status, headers, body) do
    body = if status in [204, 304], do: "", else: body
    req = Req.reply(status, response_headers(headers), body, req)
    sent(:sent)
    {:ok, nil, %{adapter | req: req}}
  end

  @doc """
  Sends a file, or `length` bytes of it from `offset` (`Plug.Conn.send_file/5`), read in
  #{div(@file_chunk, 1024)} KiB pieces, each sent once the stream's send queue has room.
  """
  @spec send_file(
          t(),
          non_neg_integer(),
          [{binary(), binary()}],
          binary(),
          integer(),
          integer() | :all
        ) ::
          {:ok, nil, t()}
  def send_file(%__MODULE__{req: req} = adapter, status, headers, path, offset, length) do
    %File.Stat{type: :regular, size: size} = File.stat!(path)
    length = if length == :all, do: size - offset, else: length

    unless is_integer(offset) and offset >= 0 and is_integer(length) and length >= 0 and
             offset + length <= size do
      raise ArgumentError,
            "cannot send #{inspect(length)} bytes from offset #{inspect(offset)} of " <>
              "#{path}: the file has #{size} bytes"
    end

    headers = [{"content-length", Integer.to_string(length)} | response_headers(headers)]

    req =
      if length == 0 or req.method == "HEAD" or status in [204, 304] do
        Req.reply(status, headers, "", req)
      else
        req = Req.stream_reply(status, headers, req)
        # Should reading the file fail now, the stream gets a RST_STREAM, not a 500.
        Process.put(@resp_key, :streaming)
        stream_file(path, offset, length, req)
        req
      end

    sent(:sent)
    {:ok, nil, %{adapter | req: %{req | resp: :sent}}}
  end

  defp stream_file(path, offset, length, req) do
    {:ok, file} = :file.open(path, [:read, :raw, :binary])

    try do
      {:ok, _} = :file.position(file, offset)
      stream_file_chunks(file, length, req)
    after
      :file.close(file)
    end
  end

  defp stream_file_chunks(file, left, req) do
    n = min(left, @file_chunk)

    case :file.read(file, n) do
      {:ok, data} when byte_size(data) == n ->
        fin = if n == left, do: :fin, else: :nofin

        case Req.stream_body(data, fin, req) do
          :ok when fin == :nofin -> stream_file_chunks(file, left - n, req)
          _done_or_closed -> :ok
        end

      {:error, reason} ->
        raise File.Error, reason: reason, action: "read", path: "the file being sent"

      _eof_or_short ->
        raise File.Error, reason: :eof, action: "read", path: "the file being sent"
    end
  end

  @doc "Starts a streamed response (`Plug.Conn.send_chunked/2`)."
  @spec send_chunked(t(), non_neg_integer(), [{binary(), binary()}]) :: {:ok, nil, t()}
  def send_chunked(%__MODULE__{req: req} = adapter, status, headers) do
    req = Req.stream_reply(status, response_headers(headers), req)
    sent(:streaming)
    {:ok, nil, %{adapter | req: req}}
  end

  @doc """
  Sends a piece of a streamed response (`Plug.Conn.chunk/2`); blocks while the stream's send
  queue is full. `{:error, :closed}` when the client reset the stream.
  """
  @spec chunk(t(), iodata()) :: {:ok, nil, t()} | {:error, term()}
  def chunk(%__MODULE__{req: req} = adapter, data) do
    case Req.stream_body(data, :nofin, req) do
      :ok -> {:ok, nil, adapter}
      {:error, _} = error -> error
    end
  end

  @doc false
  # H2Flow.Plug.Handler, once the plug returned a chunked response: ends the stream.
  def finish_chunked(%__MODULE__{req: req}), do: Req.stream_body("", :fin, req)

  @doc "Sends an informational (1xx) response (`Plug.Conn.inform/3`)."
  @spec inform(t(), 100..199, keyword() | [{binary(), binary()}]) :: :ok | {:error, term()}
  def inform(%__MODULE__{req: req}, status, headers) do
    headers = for {name, value} <- headers, do: {to_string(name), value}
    Req.inform(status, response_headers(headers), req)
  end

  @doc "Server push is off in h2flow: `{:error, :not_supported}`."
  @spec push(t(), binary(), keyword()) :: {:error, :not_supported}
  def push(%__MODULE__{}, _path, _headers), do: {:error, :not_supported}

  @doc """
  `{:error, :not_supported}`: h2flow does not implement WebSockets yet, over HTTP/1.1 nor over
  HTTP/2 (extended CONNECT, RFC 8441); it is logged, with the protocol asked for.
  """
  @spec upgrade(t(), atom(), term()) :: {:error, :not_supported}
  def upgrade(%__MODULE__{}, protocol, _opts) do
    Logger.warning(
      "h2flow: cannot upgrade to #{inspect(protocol)}: h2flow does not implement WebSockets " <>
        "yet (HTTP/1.1 Upgrade, or HTTP/2 extended CONNECT, RFC 8441)"
    )

    {:error, :not_supported}
  end

  @doc "The client's address and port, and its TLS certificate (DER) if it sent one."
  @spec get_peer_data(t()) :: %{
          address: :inet.ip_address(),
          port: :inet.port_number(),
          ssl_cert: binary() | nil
        }
  def get_peer_data(%__MODULE__{req: req}) do
    {address, port} = Req.peer(req) || {{0, 0, 0, 0}, 0}
    %{address: address, port: port, ssl_cert: Req.cert(req)}
  end

  @doc "The local address and port of the connection."
  @spec get_sock_data(t()) :: %{address: :inet.ip_address(), port: :inet.port_number()}
  def get_sock_data(%__MODULE__{req: req}) do
    {address, port} = Req.sock(req) || {{0, 0, 0, 0}, 0}
    %{address: address, port: port}
  end

  @doc "The TLS session's parameters (`:ssl.connection_information/1`), `nil` over h2c."
  @spec get_ssl_data(t()) :: keyword() | nil
  def get_ssl_data(%__MODULE__{req: req}), do: Req.tls_info(req)

  @doc "The request's HTTP version (`H2Flow.Req.version/1`)."
  @spec get_http_protocol(t()) :: Req.version()
  def get_http_protocol(%__MODULE__{req: req}), do: Req.version(req)

  defp response_headers(headers) do
    for {name, value} <- headers, name not in @connection_specific, do: {name, value}
  end

  # Plug asks adapters to tell the conn's owner (this process) that a response went.
  defp sent(how) do
    Process.put(@resp_key, how)
    send(self(), {:plug_conn, :sent})
  end
end
