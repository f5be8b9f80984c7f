# H2Flow.stats/1 with many open connections (issue 16: at most 5 ms with 10,000):
#
#     MIX_ENV=bench mix run bench/stats_connections.exs [N]
#
# Opens N idle h2c connections (default 10,000) from another OS process
# (bench/idle_clients.exs: the client sockets are not this VM's), then times stats/1: 1,000
# calls with the connections idle, and 1,000 with every connection process suspended
# (:sys.suspend/1: a connection that cannot answer, as a busy one would). For contrast, it
# times stats(server, :connections), which does ask every connection (5 calls, while they
# are idle). Prints the median, 99th percentile and maximum in microseconds.

n = String.to_integer(List.first(System.argv()) || "10000")

defmodule StatsBench.Handler do
  @behaviour H2Flow.Handler
  @impl true
  def init(req, state), do: {:ok, H2Flow.Req.reply(200, req), state}
end

defmodule StatsBench do
  def time(fun, runs) do
    times =
      for _ <- 1..runs do
        {us, _} = :timer.tc(fun)
        us
      end
      |> Enum.sort()

    %{
      median: Enum.at(times, div(runs, 2)),
      p99: Enum.at(times, div(runs * 99, 100)),
      max: List.last(times)
    }
  end

  def print(label, t) do
    IO.puts(
      String.pad_trailing(label, 58) <>
        "median #{t.median} µs, p99 #{t.p99} µs, max #{t.max} µs"
    )
  end

  def connections(server) do
    sup = H2Flow.Server.child(server, :connections)
    for {_, pid, _, _} <- DynamicSupervisor.which_children(sup), is_pid(pid), do: pid
  end
end

{:ok, server} =
  H2Flow.start_link(
    handler: StatsBench.Handler,
    port: 0,
    ip: {127, 0, 0, 1},
    backlog: 4096,
    acceptors: 8,
    max_connections: n + 100,
    idle_timeout: :infinity
  )

port = H2Flow.port(server)
elixir = System.find_executable("elixir") || raise "elixir is not on PATH"

clients =
  Port.open({:spawn_executable, elixir}, [
    :binary,
    {:line, 1024},
    args: ["bench/idle_clients.exs", "#{port}", "#{n}"]
  ])

receive do
  {^clients, {:data, {:eol, "ready"}}} -> :ok
after
  300_000 -> raise "the clients did not connect within 5 minutes"
end

stats = H2Flow.stats(server)
IO.puts("#{stats.connections} connections open (#{H2Flow.Native.profile()} NIF)")
true = stats.connections == n

StatsBench.print("stats/1, connections idle (1,000 calls)", StatsBench.time(fn -> H2Flow.stats(server) end, 1_000))

pids = StatsBench.connections(server)
Enum.each(pids, &:sys.suspend/1)

StatsBench.print(
  "stats/1, every connection suspended (1,000 calls)",
  StatsBench.time(fn -> H2Flow.stats(server) end, 1_000)
)

Enum.each(pids, &:sys.resume/1)

StatsBench.print(
  "stats(server, :connections), idle (5 calls)",
  StatsBench.time(fn -> length(H2Flow.stats(server, :connections)) end, 5)
)

Port.close(clients)
H2Flow.stop(server)
