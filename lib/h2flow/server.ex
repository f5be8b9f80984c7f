defmodule H2Flow.Server do
  @moduledoc false
  # The supervision tree of one server (after ThousandIsland's):
  #
  #   H2Flow.Server (rest_for_one)
  #   ├── Listener    owns the listen socket
  #   ├── ConnSup     DynamicSupervisor of connection processes (max_children: max_connections)
  #   ├── Drainer     on shutdown: stops accepting, GOAWAY to every connection, waits for their
  #   │               in-flight streams (up to :shutdown_timeout)
  #   └── Acceptors   N processes blocked in accept/1, each handing sockets to ConnSup
  #
  # rest_for_one: if the listener goes, acceptors restart with the new socket. A supervisor
  # stops its children last to first, so every way of stopping a server (H2Flow.stop/1, a
  # parent supervisor, the application stopping) first stops the acceptors, then drains, then
  # stops what is left of the connections.
  #
  # The server's counters (H2Flow.Server.Counters) are created here and given to every process
  # in the configuration; H2Flow.stats/1 finds them in this supervisor's process dictionary,
  # which Process.info/2 reads without a message to answer (this process may be busy: waiting
  # for the drain, say).

  use Supervisor

  @counters :"$h2flow_counters"

  def start_link(config) do
    Supervisor.start_link(__MODULE__, config, Keyword.take(config.gen_opts, [:name]))
  end

  @impl true
  def init(config) do
    counters = H2Flow.Server.Counters.new()
    Process.put(@counters, counters)
    config = %{config | counters: counters, telemetry: H2Flow.Telemetry.enabled?()}

    children = [
      {H2Flow.Server.Listener, config},
      {DynamicSupervisor, strategy: :one_for_one, max_children: config.max_connections}
      |> Supervisor.child_spec(id: :connections),
      {H2Flow.Server.Drainer, {self(), config}},
      {H2Flow.Server.Acceptors, {self(), config}}
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end

  @doc false
  def child(server, id) do
    server
    |> Supervisor.which_children()
    |> Enum.find_value(fn {child_id, pid, _, _} -> child_id == id && is_pid(pid) && pid end)
  end

  @doc false
  # The server's counters, without a message to the server.
  def counters(server) do
    with pid when is_pid(pid) <- GenServer.whereis(server),
         {:dictionary, dictionary} <- Process.info(pid, :dictionary),
         {_, counters} <- List.keyfind(dictionary, @counters, 0) do
      counters
    else
      _ -> exit({:noproc, {H2Flow, :stats, [server]}})
    end
  end
end
