defmodule H2Flow.Server.Acceptors do
  @moduledoc false
  # A supervisor of acceptor processes; each loops on accept and starts a connection process.

  use Supervisor

  def start_link({server, config}), do: Supervisor.start_link(__MODULE__, {server, config})

  @impl true
  def init({server, config}) do
    children =
      for i <- 1..config.acceptors do
        Supervisor.child_spec({Task, fn -> accept_loop(server, config) end},
          id: {:acceptor, i},
          restart: :permanent
        )
      end

    Supervisor.init(children, strategy: :one_for_one, max_restarts: 100, max_seconds: 1)
  end

  defp accept_loop(server, config) do
    # The server supervisor answers once it has started all its children; we are started
    # asynchronously (Task), so this cannot deadlock.
    listener = H2Flow.Server.child(server, H2Flow.Server.Listener)
    socket = GenServer.call(listener, :socket)
    conns = H2Flow.Server.child(server, :connections)
    # Connections get no TLS options: the listen socket has them, and a private key has no
    # business in a connection process's state.
    config = %{config | tls: []}
    loop(socket, conns, H2Flow.Transport.module(config.transport), config)
  end

  defp loop(socket, conns, transport, config) do
    case transport.accept(socket) do
      {:ok, sock} ->
        start_connection(sock, conns, transport, config)
        loop(socket, conns, transport, config)

      {:error, :closed} ->
        exit(:normal)

      {:error, _transient} ->
        loop(socket, conns, transport, config)
    end
  end

  defp start_connection(sock, conns, transport, config) do
    case DynamicSupervisor.start_child(conns, {H2Flow.Connection, {sock, config}}) do
      {:ok, pid} ->
        case transport.controlling_process(sock, pid) do
          :ok ->
            send(pid, :go)

          {:error, _} ->
            _ = transport.close(sock)
            Process.exit(pid, :kill)
        end

      {:error, _max_children} ->
        transport.close(sock)
    end
  end
end
