defmodule H2Flow.Client.Connection do
  @moduledoc false
  # The socket shell of one client connection: connects (TCP, or TLS with ALPN h2), writes the
  # preface and waits for the server's SETTINGS, then reads (with {active, once} to wait, and
  # straight on while the socket has more), handles every message that is ready (socket data,
  # callers' commands) before it flushes the engine and writes once, checks the engine's
  # timeouts, and closes. Requests are H2Flow.Client.Requests' business; windows and buffers
  # are the engine's.

  use GenServer, restart: :temporary

  require Logger

  alias H2Flow.Client.Requests
  alias H2Flow.Engine

  # Flush at the latest after this many messages, even if more are waiting.
  @max_batch 64
  # How often the engine's timeouts (SETTINGS acknowledgement, send stalls) are checked.
  @tick 1_000

  defstruct [
    :socket,
    :transport,
    :engine,
    :requests,
    :config,
    :owner,
    batch: 0,
    # The socket is passive (a read arrived since the last {active, once}): flush/1 reads on.
    passive: false,
    writes: 0,
    # A GOAWAY was sent or received: the connection ends once nothing is open.
    closing: false
  ]

  def start(config, owner), do: GenServer.start(__MODULE__, {config, owner}, gen_opts(config))
  def start_link(config), do: GenServer.start_link(__MODULE__, {config, nil}, gen_opts(config))

  defp gen_opts(%{name: nil}), do: []
  defp gen_opts(%{name: name}), do: [name: name]

  @impl true
  def init({config, owner}) do
    # A supervisor's shutdown reaches terminate/2 (which answers the callers).
    Process.flag(:trap_exit, true)
    if owner, do: Process.monitor(owner)
    {:ok, engine} = Engine.new_client(config.engine)

    case handshake(config, engine) do
      {:ok, socket} ->
        Process.send_after(self(), :tick, @tick)

        {:ok,
         %__MODULE__{
           socket: socket,
           transport: config.transport,
           engine: engine,
           requests: Requests.new(engine, config),
           config: config,
           owner: owner
         }}

      {:error, reason} ->
        {:stop, reason}
    end
  end

  # Connects, writes our preface and reads until the server's SETTINGS (the first frame it
  # sends) arrived, all within :connect_timeout: a request is never sent before we know the
  # server's concurrency limit.
  defp handshake(c, engine) do
    deadline = System.monotonic_time(:millisecond) + c.connect_timeout
    {host, family} = host(c.host)
    opts = family ++ H2Flow.Client.Options.socket_opts(c)

    with {:ok, sock} <- c.transport.connect(host, c.port, opts, c.connect_timeout),
         :ok <- check_alpn(c.transport, sock),
         :ok <- c.transport.send(sock, Engine.flush(engine)),
         :ok <- await_settings(c.transport, sock, engine, deadline),
         :ok <- c.transport.send(sock, Engine.flush(engine)),
         :ok <- c.transport.setopts(sock, active: :once, buffer: c.read_buffer) do
      {:ok, sock}
    end
  end

  defp host(host) do
    case :inet.parse_address(String.to_charlist(host)) do
      {:ok, ip} when tuple_size(ip) == 8 -> {ip, [:inet6]}
      {:ok, ip} -> {ip, []}
      {:error, _} -> {String.to_charlist(host), []}
    end
  end

  defp check_alpn(H2Flow.Transport.TCP, _sock), do: :ok

  defp check_alpn(transport, sock) do
    case transport.negotiated_protocol(sock) do
      {:ok, "h2"} ->
        :ok

      other ->
        transport.close(sock)
        {:error, {:alpn, other}}
    end
  end

  defp await_settings(transport, sock, engine, deadline) do
    timeout = max(deadline - System.monotonic_time(:millisecond), 0)

    with {:ok, data} <- transport.recv(sock, 0, timeout),
         {:ok, _events} <- Engine.recv(engine, data) do
      if Engine.info(engine).frames_received > 0,
        do: :ok,
        else: await_settings(transport, sock, engine, deadline)
    else
      {:error, reason} ->
        _ = transport.send(sock, Engine.flush(engine))
        transport.close(sock)
        {:error, reason}
    end
  end

  # Crash reports and :sys.get_status/1 show no socket data, body or TLS option.
  @doc false
  def format_status(status) do
    Map.new(status, fn
      {:state, %__MODULE__{} = s} -> {:state, %{url: s.config.url, writes: s.writes}}
      {:message, _} -> {:message, :redacted}
      other -> other
    end)
  end

  # --- messages --------------------------------------------------------------------------

  @impl true
  def handle_info({tag, _sock, data}, s) when tag in [:tcp, :ssl],
    do: received(%{s | passive: true}, data)

  def handle_info({tag, _sock}, s) when tag in [:tcp_closed, :ssl_closed], do: stop(s, :closed)

  def handle_info({tag, _sock, _reason}, s) when tag in [:tcp_error, :ssl_error],
    do: stop(s, :closed)

  def handle_info({:"$h2flow_client", caller, ref, command}, s) do
    continue(%{s | requests: Requests.command(s.requests, caller, ref, command)})
  end

  def handle_info({:DOWN, _mon, :process, owner, _reason}, %{owner: owner} = s),
    do: close(s, 0)

  def handle_info({:DOWN, mon, :process, _pid, _reason}, s),
    do: continue(%{s | requests: Requests.caller_down(s.requests, mon)})

  def handle_info(:timeout, s), do: flush(s)

  def handle_info(:tick, s) do
    Process.send_after(self(), :tick, @tick)

    case Engine.check_timeouts(s.engine) do
      {:ok, events} ->
        s |> events(events) |> flush()

      {:error, reason, events} ->
        s = s |> events(events) |> write(Engine.flush(s.engine))
        stop(s, reason)
    end
  end

  def handle_info({:close, drain_ms}, s), do: close(s, drain_ms)
  def handle_info(:drain_expired, s), do: stop(s, :closed)
  # The parent's exit is gen_server's business (terminate/2); the socket's port exits only once
  # we closed it.
  def handle_info(_other, s), do: {:noreply, s, 0}

  @impl true
  def handle_call(:stats, _from, s) do
    stats = s.engine |> Engine.stats() |> Map.merge(Requests.counters(s.requests))
    {:reply, Map.put(stats, :writes, s.writes), s, 0}
  end

  @impl true
  def terminate(reason, s) do
    _ = Requests.fail_all(s.requests, failure(reason))
    s.transport.close(s.socket)
  end

  # --- reading, batching and writing -----------------------------------------------------

  defp received(s, data) do
    case Engine.recv(s.engine, data) do
      {:ok, events} ->
        s |> events(own_data(events)) |> continue()

      {:error, reason} ->
        Logger.debug(fn -> "h2flow client: connection error: #{inspect(reason)}" end)
        s = write(s, Engine.flush(s.engine))
        stop(s, reason)
    end
  end

  # Once the mailbox is handled, what else the socket holds is read at once (at most
  # :read_buffer bytes a read, nothing queued in the mailbox); only an empty socket is left to
  # {active, once}, which costs a round through the VM's poll thread.
  defp read_on(s) do
    case s.transport.recv(s.socket, 0, 0) do
      {:ok, data} ->
        received(s, data)

      {:error, :timeout} ->
        _ = s.transport.setopts(s.socket, active: :once)
        {:noreply, %{s | passive: false}}

      {:error, _reason} ->
        stop(s, :closed)
    end
  end

  # The engine reports DATA in the client role as sub-binaries of the socket read: each run of
  # a stream's DATA in a read becomes one binary here, so that nothing keeps a read alive (a
  # piece of at least a quarter of its read may stay a sub-binary, as the server's rule has it)
  # and a caller that keeps up gets one binary it need not join. The runs of one stream that
  # the 64 KiB NIF calls cut apart are joined too.
  defp own_data([{:data, id, a, false}, {:data, id, b, fin} | rest]),
    do: own_data([{:data, id, [a | b], fin} | rest])

  defp own_data([{:data, id, pieces, fin} | rest]),
    do: [{:data, id, [own(pieces)], fin} | own_data(rest)]

  defp own_data([event | rest]), do: [event | own_data(rest)]
  defp own_data([]), do: []

  defp own([piece]) when is_binary(piece) do
    if byte_size(piece) * 4 >= :binary.referenced_byte_size(piece),
      do: piece,
      else: :binary.copy(piece)
  end

  defp own(pieces), do: IO.iodata_to_binary(pieces)

  defp events(s, events) do
    requests = Enum.reduce(events, s.requests, &Requests.event(&2, &1))
    closing = s.closing or Enum.any?(events, &match?({:goaway, _, _, _}, &1))
    %{s | requests: Requests.drain_queue(requests), closing: closing}
  end

  defp continue(s) do
    if s.batch + 1 >= @max_batch,
      do: flush(s),
      else: {:noreply, %{s | batch: s.batch + 1}, 0}
  end

  defp flush(s) do
    s = write(%{s | batch: 0}, Engine.flush(s.engine))

    cond do
      s.closing and Requests.empty?(s.requests) and Engine.info(s.engine).done -> stop(s, :closed)
      s.passive -> read_on(s)
      true -> {:noreply, s}
    end
  end

  defp write(s, ""), do: s

  defp write(s, bytes) do
    case s.transport.send(s.socket, bytes) do
      :ok ->
        %{s | writes: s.writes + 1}

      {:error, _reason} ->
        # The server is gone or does not read (send timeout): the socket says so next.
        send(self(), {:tcp_closed, s.socket})
        s
    end
  end

  # GOAWAY: no new request; those in flight finish within `drain_ms`.
  defp close(s, drain_ms) do
    :ok = Engine.goaway(s.engine, :no_error, "")
    s = %{s | requests: Requests.close(s.requests, :closed), closing: true}
    Process.send_after(self(), :drain_expired, drain_ms)
    flush(s)
  end

  defp stop(s, reason) do
    reason = failure(reason)
    s = %{s | requests: Requests.fail_all(s.requests, reason)}
    {:stop, {:shutdown, reason}, s}
  end

  # What callers are told when the connection ends.
  defp failure({:shutdown, reason}), do: reason
  defp failure(:normal), do: :closed
  defp failure(:shutdown), do: :closed
  defp failure(reason), do: reason
end
