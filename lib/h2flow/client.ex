defmodule H2Flow.Client do
  @moduledoc """
  An HTTP/2 client on h2flow's engine: one process per connection, requests from any number of
  processes multiplexed over it, response bodies credited to the server only as they are read.

      defmodule MyApp.Echo do
        @behaviour H2Flow.Handler

        @impl true
        def init(req, state) do
          {:ok, body, req} = H2Flow.Req.read_body(req)
          {:ok, H2Flow.Req.reply(200, %{}, body, req), state}
        end
      end

      {:ok, server} = H2Flow.start_link(handler: MyApp.Echo, port: 0)
      {:ok, client} = H2Flow.Client.connect("http://localhost:\#{H2Flow.port(server)}")

      # The whole response (at most :max_body bytes of body)
      {:ok, %{status: 200, headers: _, body: "hello", trailers: []}} =
        H2Flow.Client.request(client, "POST", "/", [{"content-type", "text/plain"}], "hello")

      # A body from an enumerable, sent as the server's windows allow; the response pulled in
      # pieces, each credited to the server as it is read
      pieces = Stream.duplicate(:binary.copy("x", 65_536), 100)
      {:ok, response} = H2Flow.Client.stream(client, "PUT", "/", [], pieces)
      200 = response.status

      count = fn count, response, n ->
        case H2Flow.Client.read_body(response) do
          {:more, data, response} -> count.(count, response, n + byte_size(data))
          {:ok, data, _response} -> n + byte_size(data)
        end
      end

      6_553_600 = count.(count, response, 0)

      %{window_update_frames: %{connection: _, stream: _}} = H2Flow.Client.stats(client)
      :ok = H2Flow.Client.close(client)

  `connect/2` speaks h2c with prior knowledge for `http://` URLs, and h2 over TLS (ALPN `h2`)
  for `https://`, verifying the server's certificate against the system's CA store
  (`:public_key.cacerts_get/0`) unless `:cacerts` or `:cacertfile` name others. It returns once
  the server's SETTINGS arrived, so requests never go out before its concurrency limit is
  known. The process is not linked to the caller (it stops when the caller exits); in a
  supervision tree, `{H2Flow.Client, url: "https://...", name: MyApp.API}`.

  ## Flow control

  The engine is the server's (`H2Flow.Engine` in the client role), so a client gets the same
  scheduler: response bytes are credited only once the application took them, credits are
  coalesced (one WINDOW_UPDATE per half window, at most one per stream and one for the
  connection per write), and windows grow only while the application keeps up. The client
  role's windows are larger than a server's (the option defaults below differ for these):
  16 MiB per stream and 32 MiB for the connection, growing to 32 / 64 MiB, so that a 256 MiB
  download costs some 30 WINDOW_UPDATE frames. `request/6` reads the body as it arrives (within
  `:max_body`); `stream/6` leaves it with the connection until `read_body/2` pulls it, so a
  caller that stops reading holds at most its stream window (the server is told nothing more).
  Request bodies go out within the server's windows: `stream/6` and `request/6` with an
  enumerable body pull the next piece only once the engine accepted the previous one (at most
  `:max_send_queue` bytes wait per stream).

  Requests beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS (and the client's own
  `:max_concurrent_streams`, 100 by default) wait in the connection, in order, and go out as
  streams close; they are never sent to be refused.

  ## Errors

  A request that fails returns `{:error, reason}`; the caller never crashes and the connection
  carries on unless the reason is about the connection:

    * `{:stream_reset, code}`: the server reset the stream (`:refused_stream`: it did not
      process the request);
    * `{:goaway, code}`: the server is going away and did not process the request (safe to
      retry on a new connection);
    * `{:stream_error, code, message}`: the server broke the protocol on this stream (we reset
      it);
    * `{:connection_error, code, message}`, `:closed`: the connection ended;
    * `{:body_too_large, max_body}`, `:timeout`, `:send_timeout` (the server opened no window
      for `:send_stall_timeout`), `:too_many_requests` (`:max_pending_requests` are waiting).

  ## Options

  `connect/2` and `start_link/1` take (unknown options raise `ArgumentError`):

    * `:connect_timeout` (default `10000` ms): TCP connect, TLS handshake and the server's
      SETTINGS.
    * `:tls` (default `[]`): `:ssl` options added to (or overriding) h2flow's.
    * `:cacerts` / `:cacertfile`: the CAs that verify the server (default: the system's).
    * `:write_timeout` (default `30000` ms): a server that does not read for this long while we
      write is disconnected.
    * `:read_buffer` (default `262144`): bytes read from the socket at most per read.
    * `:max_pending_requests` (default `10000`): requests waiting for a stream, beyond which
      new ones fail with `:too_many_requests`.
    * `:name`: registers the connection process.
    * Engine options, as for the server (see `H2Flow.Engine`): windows, limits and defences.
      `:max_concurrent_streams` is the most requests in flight at once. Defaults that differ
      from the server's: #{Enum.map_join(H2Flow.Engine.Options.client_defaults(), ", ", fn {k, v} -> "`#{inspect(k)}` `#{v}`" end)}.

  `request/6`, `stream/6` and `read_body/2` take `:timeout` (default `30000` ms: how long the
  caller waits for each answer — the response, the next piece of it, the engine taking the
  next piece of the body; then the request is cancelled with RST_STREAM CANCEL), and
  `request/6` takes `:max_body` (default `8000000` bytes).
  """

  alias H2Flow.Client.{Connection, Options, Response}

  @typedoc "A client connection (its process)."
  @type t :: GenServer.server()

  @type headers :: [{binary(), binary()}]

  @typedoc "A request body: iodata, `nil` (none) or an enumerable of iodata, sent in pieces."
  @type body :: iodata() | nil | Enumerable.t()

  @type response :: %{status: 100..599, headers: headers(), body: binary(), trailers: headers()}

  @type reason ::
          {:stream_reset, H2Flow.Engine.error_code()}
          | {:goaway, H2Flow.Engine.error_code()}
          | {:stream_error, H2Flow.Engine.error_code(), String.t()}
          | {:connection_error, H2Flow.Engine.error_code(), String.t()}
          | {:body_too_large, pos_integer()}
          | :closed
          | :timeout
          | :send_timeout
          | :too_many_requests
          | term()

  @default_timeout 30_000
  @default_max_body 8_000_000

  @doc "Connects to `url` (`http://host:port` or `https://...`). See the module doc for options."
  @spec connect(String.t(), keyword()) :: {:ok, t()} | {:error, term()}
  def connect(url, opts \\ []) do
    Connection.start(Options.config!(url, opts), self())
  end

  @doc "Starts a connection linked to the caller: `opts` has `:url` and `connect/2`'s options."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    {url, opts} = Keyword.pop(opts, :url)
    Connection.start_link(Options.config!(url, opts))
  end

  @doc """
  A child specification: `{H2Flow.Client, url: url, name: name}`. The child is temporary: it
  ends with its connection (a GOAWAY, the server closing it), and is not restarted.
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{
      id: {__MODULE__, opts[:name] || make_ref()},
      start: {__MODULE__, :start_link, [opts]},
      restart: :temporary
    }
  end

  @doc """
  Closes the connection: GOAWAY, then requests in flight get up to `drain_ms` to finish (new
  ones fail with `:closed`). Returns once the process is gone.
  """
  @spec close(t(), non_neg_integer()) :: :ok
  def close(client, drain_ms \\ 5_000) do
    case GenServer.whereis(client) do
      nil ->
        :ok

      pid ->
        ref = Process.monitor(pid)
        send(pid, {:close, drain_ms})

        receive do
          {:DOWN, ^ref, _, _, _} -> :ok
        end
    end
  end

  @doc """
  Sends a request and returns the whole response. `headers` are the regular fields (names are
  lowercased); `:method`, `:scheme`, `:authority` and `:path` come from the arguments and the
  URL. See the module doc for `body`, options and errors.
  """
  @spec request(t(), String.t(), String.t(), headers(), body(), keyword()) ::
          {:ok, response()} | {:error, reason()}
  def request(client, method, path, headers \\ [], body \\ nil, opts \\ []) do
    max_body = Keyword.get(opts, :max_body, @default_max_body)

    unless is_integer(max_body) and max_body >= 0,
      do: raise(ArgumentError, ":max_body must be a non-negative integer")

    run(client, method, path, headers, body, {:whole, max_body}, opts)
  end

  @doc """
  Sends a request and returns its response's head once it arrived: a `H2Flow.Client.Response`
  whose body `read_body/2` pulls in pieces (only what was pulled is credited to the server).
  The response must be read to its end or `cancel/1`led, by the process that called `stream/6`.
  """
  @spec stream(t(), String.t(), String.t(), headers(), body(), keyword()) ::
          {:ok, Response.t()} | {:error, reason()}
  def stream(client, method, path, headers \\ [], body \\ nil, opts \\ []) do
    case run(client, method, path, headers, body, :stream, opts) do
      {:ok, {status, resp_headers}, ref} ->
        {:ok, %Response{status: status, headers: resp_headers, client: client, ref: ref}}

      error ->
        error
    end
  end

  @doc """
  Reads the next piece of a streamed response's body (at least one byte), waiting for it if
  nothing arrived. Everything that arrived since the last call to the connection is taken (and
  credited to the server) at once, one binary per socket read it came in; `read_body/2` returns
  them in turn, the later ones without asking the connection again. `{:ok, data, response}`
  with the last piece once the body has ended (with `response.trailers`), `{:more, data,
  response}` before.
  """
  @spec read_body(Response.t(), keyword()) ::
          {:more, binary(), Response.t()} | {:ok, binary(), Response.t()} | {:error, reason()}
  def read_body(response, opts \\ [])

  def read_body(%Response{pending: [_ | _] = pending} = resp, _opts),
    do: next_piece(pending, resp)

  def read_body(%Response{done: true} = resp, _opts), do: {:ok, "", resp}

  def read_body(%Response{ref: ref} = resp, opts) do
    command(resp.client, ref, :read)

    case await(resp.client, ref, Keyword.get(opts, :timeout, @default_timeout)) do
      {:more, data} ->
        # The engine answers a read once a byte was consumed; should only empty DATA frames
        # have come, read on rather than hand the caller an empty piece before the end.
        case pieces(data) do
          [] -> read_body(resp, opts)
          pieces -> next_piece(pieces, resp)
        end

      {:fin, data, trailers} ->
        Process.demonitor(ref, [:flush])
        next_piece(pieces(data), %{resp | trailers: trailers, done: true})

      {:error, _} = error ->
        error
    end
  end

  # The pieces as the connection handed them over: one binary per socket read, in a list nested
  # as it grew (H2Flow.Client.Connection); none is joined or copied.
  defp pieces(data), do: data |> :lists.flatten() |> Enum.reject(&(&1 == ""))

  defp next_piece([], %Response{done: true} = resp), do: {:ok, "", %{resp | pending: []}}
  defp next_piece([piece], %Response{done: true} = resp), do: {:ok, piece, %{resp | pending: []}}
  defp next_piece([piece | rest], resp), do: {:more, piece, %{resp | pending: rest}}

  @doc "Abandons a streamed response: RST_STREAM CANCEL, and what the connection held is freed."
  @spec cancel(Response.t()) :: :ok
  def cancel(%Response{done: true}), do: :ok

  def cancel(%Response{ref: ref, client: client}) do
    cancel_request(client, ref)
    :ok
  end

  @doc """
  The connection's counters: those of `H2Flow.Engine.stats/1` (frames by type in both
  directions, `:window_update_frames` sent, bytes, windows, stalls, defences...) plus
  `:requests`, `:requests_queued` (requests that waited for a stream), `:queued_requests` (now)
  and `:peak_queued_requests`, and `:writes` (socket writes).
  """
  @spec stats(t()) :: map()
  def stats(client), do: GenServer.call(client, :stats)

  # --- the caller's side of a request --------------------------------------------------------

  defp run(client, method, path, headers, body, mode, opts) do
    timeout = Keyword.get(opts, :timeout, @default_timeout)
    headers = normalize!(headers)

    {first, rest} =
      case body do
        nil -> {{"", true}, nil}
        b when is_binary(b) or is_list(b) -> {{IO.iodata_to_binary(b), true}, nil}
        enum -> {{"", false}, enum}
      end

    pid = GenServer.whereis(client)
    # Replies come to this alias; once the request is over or abandoned, late ones are dropped.
    ref = if pid, do: :erlang.monitor(:process, pid, alias: :demonitor), else: make_ref()
    command(pid, ref, {:request, to_string(method), to_string(path), headers, first, mode})
    reply = await(pid, ref, timeout)
    reply = if rest && reply == :ok, do: send_pieces(pid, ref, rest, timeout), else: reply

    case reply do
      {:done, {:ok, {status, resp_headers}}} when mode == :stream ->
        {:ok, {status, resp_headers}, ref}

      {:done, {:ok, %{body: body} = response}} when mode != :stream ->
        Process.demonitor(ref, [:flush])
        {:ok, %{response | body: join(body)}}

      {:done, {:error, {:invalid_request, message}}} ->
        Process.demonitor(ref, [:flush])
        raise ArgumentError, message

      {:done, outcome} ->
        Process.demonitor(ref, [:flush])
        outcome

      {:error, _} = error ->
        error
    end
  end

  # The body's pieces, one ahead, so that the last one carries END_STREAM. Each goes once the
  # engine took the previous one: the server's windows pace the enumerable.
  defp send_pieces(pid, ref, enum, timeout) do
    result =
      Enum.reduce_while(enum, nil, fn piece, previous ->
        piece = IO.iodata_to_binary(piece)

        cond do
          piece == "" ->
            {:cont, previous}

          previous == nil ->
            {:cont, piece}

          true ->
            command(pid, ref, {:body, previous, false})

            case await(pid, ref, timeout) do
              :ok -> {:cont, piece}
              other -> {:halt, {:stop, other}}
            end
        end
      end)

    case result do
      {:stop, reply} ->
        reply

      last ->
        command(pid, ref, {:body, last || "", true})
        await(pid, ref, timeout)
    end
  end

  # A body as the connection hands it over: one binary per socket read, in a list nested as it
  # grew; one alone (a caller that keeps up) is returned as it is.
  defp join([[], data]) when is_binary(data), do: data
  defp join(data), do: IO.iodata_to_binary(data)

  defp command(nil, _ref, _command), do: :ok
  defp command(pid, ref, command), do: send(pid, {:"$h2flow_client", self(), ref, command})

  defp await(nil, _ref, _timeout), do: {:error, :closed}

  defp await(pid, ref, timeout) do
    receive do
      {^ref, reply} ->
        reply

      {:DOWN, ^ref, _, _, _} ->
        {:error, :closed}
    after
      timeout ->
        cancel_request(pid, ref)
        {:error, :timeout}
    end
  end

  defp cancel_request(client, ref) do
    case GenServer.whereis(client) do
      nil -> :ok
      pid -> command(pid, ref, :cancel)
    end

    Process.demonitor(ref, [:flush])
  end

  defp normalize!(headers) when is_list(headers) do
    Enum.map(headers, fn
      {name, value} -> {String.downcase(to_string(name), :ascii), to_string(value)}
      other -> raise ArgumentError, "headers must be {name, value} pairs, got: #{inspect(other)}"
    end)
  end

  defp normalize!(headers), do: Enum.to_list(headers) |> normalize!()
end
