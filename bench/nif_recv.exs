# The NIF micro-benchmark of `mix h2flow.bench` (section nif) on its own: the time of one
# H2Flow.Engine.recv/2 call on 16 KiB and 64 KiB reads of a mixed client byte stream (HEADERS
# of new streams, DATA, WINDOW_UPDATE, PING). Run it with the release NIF:
#
#     MIX_ENV=bench mix run bench/nif_recv.exs [CALLS_PER_SIZE]   (default 5000)

calls =
  case System.argv() do
    [] -> 5_000
    [n] -> String.to_integer(n)
  end

IO.puts("NIF profile: #{H2Flow.Native.profile()}; #{calls} calls per size")

results = H2Flow.Bench.NifRecv.run([16_384, 65_536], calls)

for {size, r} <- Enum.sort(results) do
  IO.puts(
    "recv #{div(size, 1024)} KiB: median #{Float.round(r.median_us, 1)} µs, " <>
      "p99 #{Float.round(r.p99_us, 1)} µs, mean #{Float.round(r.mean_us, 1)} µs, " <>
      "max #{Float.round(r.max_us, 1)} µs, #{Float.round(r.events, 1)} events per call"
  )
end
