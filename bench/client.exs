# The client's measurements (issue 19), against nghttpd (Debian nghttp2-server) over h2c on
# loopback, runs interleaved, medians reported:
#
#   * a 256 MiB download: H2Flow.Client (streamed and whole), curl, and Mint when MINT_EBIN
#     names its build (`. /work/ext/env.sh`); wall time including the connection, and the
#     WINDOW_UPDATE frames each client sent, counted by a verbose nghttpd in a separate pass;
#   * 100,000 small GETs over one connection: H2Flow.Client from 100 processes, and Mint from
#     one process keeping 100 requests in flight.
#
#     MIX_ENV=bench mix run bench/client.exs [ROUNDS]     (default 5)
#
# Mint is never part of h2flow: the script loads it from MINT_EBIN, built outside this
# repository.

rounds =
  case System.argv() do
    [] -> 5
    [n] -> String.to_integer(n)
  end

mint? =
  case System.get_env("MINT_EBIN", "") do
    "" ->
      IO.puts("MINT_EBIN is not set: Mint is left out.")
      false

    dirs ->
      for dir <- String.split(dirs, ":", trim: true), do: true = Code.prepend_path(dir)
      true
  end

defmodule Bench.Nghttpd do
  # nghttpd on a free port with a docroot; stopped by stop/1 (the OS process we started).
  def start(docroot, args \\ []) do
    exe = System.find_executable("nghttpd") || raise "nghttpd is not on PATH"
    {:ok, sock} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(sock)
    :gen_tcp.close(sock)
    all = ["-a", "127.0.0.1", "-d", docroot] ++ args ++ [Integer.to_string(port), "--no-tls"]
    p = Port.open({:spawn_executable, exe}, [:binary, :exit_status, :stderr_to_stdout, args: all])
    {:os_pid, os_pid} = Port.info(p, :os_pid)
    wait(port, 100)
    %{port: port, os_pid: os_pid, handle: p}
  end

  defp wait(_port, 0), do: raise("nghttpd did not start")

  defp wait(port, n) do
    # Passive: nghttpd sends its SETTINGS at once, which must not reach the mailbox (Mint reads it).
    case :gen_tcp.connect({127, 0, 0, 1}, port, [active: false], 100) do
      {:ok, s} -> :gen_tcp.close(s)
      _ -> Process.sleep(50) && wait(port, n - 1)
    end
  end

  def stop(%{os_pid: pid}), do: System.cmd("kill", [Integer.to_string(pid)])

  # With -v: the WINDOW_UPDATE frames nghttpd received since the last call.
  def window_updates_received(%{handle: p}, acc \\ 0) do
    receive do
      {^p, {:data, data}} ->
        n = length(String.split(data, "recv WINDOW_UPDATE frame")) - 1
        window_updates_received(%{handle: p}, acc + n)
    after
      500 -> acc
    end
  end
end

defmodule Bench.Mint do
  # Mint 1.9.1 (Mint.HTTP2 directly), driven from one process.
  @compile {:no_warn_undefined, [Mint.HTTP2]}

  def download(port, path) do
    {:ok, conn} = Mint.HTTP2.connect(:http, "127.0.0.1", port)
    {:ok, conn, ref} = Mint.HTTP2.request(conn, "GET", path, [], nil)
    {conn, n} = recv(conn, ref, 0)
    Mint.HTTP2.close(conn)
    n
  end

  defp recv(conn, ref, n) do
    receive do
      {tag, _, _} = message when tag in [:tcp, :tcp_closed, :tcp_error] ->
        {:ok, conn, responses} = Mint.HTTP2.stream(conn, message)

        Enum.reduce(responses, {:cont, n}, fn
          {:data, ^ref, d}, {s, n} -> {s, n + byte_size(d)}
          {:done, ^ref}, {_, n} -> {:done, n}
          _, acc -> acc
        end)
        |> case do
          {:done, n} -> {conn, n}
          {:cont, n} -> recv(conn, ref, n)
        end
    end
  end

  # `total` GETs of `path`, `window` of them in flight at a time.
  def gets(port, path, total, window) do
    {:ok, conn} = Mint.HTTP2.connect(:http, "127.0.0.1", port)
    {conn, in_flight} = fill(conn, path, window, 0)
    conn = loop(conn, path, total - in_flight, in_flight, 0)
    Mint.HTTP2.close(conn)
  end

  defp fill(conn, _path, 0, n), do: {conn, n}

  defp fill(conn, path, k, n) do
    {:ok, conn, _ref} = Mint.HTTP2.request(conn, "GET", path, [], nil)
    fill(conn, path, k - 1, n + 1)
  end

  defp loop(conn, _path, 0, 0, _done), do: conn

  defp loop(conn, path, left, in_flight, done) do
    receive do
      {tag, _, _} = message when tag in [:tcp, :tcp_closed, :tcp_error] ->
        {:ok, conn, responses} = Mint.HTTP2.stream(conn, message)
        finished = Enum.count(responses, &match?({:done, _}, &1))
        more = min(finished, left)
        {conn, _} = fill(conn, path, more, 0)
        loop(conn, path, left - more, in_flight - finished + more, done + finished)
    end
  end
end

defmodule Bench.Run do
  def time(fun) do
    t = System.monotonic_time(:microsecond)
    result = fun.()
    {(System.monotonic_time(:microsecond) - t) / 1_000_000, result}
  end

  def median(xs), do: xs |> Enum.sort() |> Enum.at(div(length(xs), 2))

  def h2flow_download(port, path, mode) do
    t = System.monotonic_time(:microsecond)
    {:ok, c} = H2Flow.Client.connect("http://127.0.0.1:#{port}")

    n =
      case mode do
        :stream ->
          {:ok, resp} = H2Flow.Client.stream(c, "GET", path)
          read(resp, 0)

        :whole ->
          {:ok, %{body: body}} =
            H2Flow.Client.request(c, "GET", path, [], nil, max_body: 1_073_741_824)

          byte_size(body)
      end

    t = (System.monotonic_time(:microsecond) - t) / 1_000_000
    stats = H2Flow.Client.stats(c)
    H2Flow.Client.close(c)
    {t, {n, stats.window_update_frames.connection + stats.window_update_frames.stream}}
  end

  defp read(resp, n) do
    case H2Flow.Client.read_body(resp) do
      {:more, d, resp} -> read(resp, n + byte_size(d))
      {:ok, d, _} -> n + byte_size(d)
    end
  end

  def curl(port, path) do
    {out, 0} =
      System.cmd("curl", [
        "-s",
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "http://127.0.0.1:#{port}#{path}"
      ])

    String.to_integer(out)
  end

  def h2flow_gets(port, path, total, procs) do
    {:ok, c} = H2Flow.Client.connect("http://127.0.0.1:#{port}")

    1..procs
    |> Enum.map(fn _ ->
      Task.async(fn ->
        for _ <- 1..div(total, procs),
            do: {:ok, %{status: 200}} = H2Flow.Client.request(c, "GET", path)
      end)
    end)
    |> Enum.each(&Task.await(&1, :infinity))

    stats = H2Flow.Client.stats(c)
    H2Flow.Client.close(c)
    stats
  end
end

dir = Path.join(System.tmp_dir!(), "h2flow-bench-client-#{System.os_time()}")
File.mkdir_p!(dir)
size = 256 * 1024 * 1024
block = :crypto.strong_rand_bytes(1_048_576)
File.write!(Path.join(dir, "large"), :binary.copy(block, 256))
File.write!(Path.join(dir, "small"), :binary.copy("h2flow", 20))
IO.puts("NIF profile: #{H2Flow.Native.profile()}; #{rounds} rounds; files in #{dir}")

server = Bench.Nghttpd.start(dir)

contenders =
  [
    {"h2flow stream/6", fn -> Bench.Run.h2flow_download(server.port, "/large", :stream) end},
    {"h2flow request/6", fn -> Bench.Run.h2flow_download(server.port, "/large", :whole) end},
    {"curl", fn -> Bench.Run.time(fn -> {Bench.Run.curl(server.port, "/large"), nil} end) end}
  ] ++
    if(mint?,
      do: [
        {"Mint",
         fn -> Bench.Run.time(fn -> {Bench.Mint.download(server.port, "/large"), nil} end) end}
      ],
      else: []
    )

IO.puts("\n256 MiB download from nghttpd (wall time, connection included):")

times =
  for round <- 1..rounds, {name, fun} <- contenders, reduce: %{} do
    acc ->
      {t, {^size, wu}} = fun.()

      IO.puts(
        "  round #{round} #{name}: #{Float.round(t, 3)} s" <>
          if(wu, do: ", #{wu} WINDOW_UPDATEs", else: "")
      )

      Map.update(acc, name, [t], &[t | &1])
  end

for {name, _} <- contenders do
  t = Bench.Run.median(times[name])
  IO.puts("  #{name}: median #{Float.round(t, 3)} s, #{Float.round(size / t / 1_048_576)} MiB/s")
end

# WINDOW_UPDATE frames as nghttpd counts them (a verbose nghttpd, for counting only).
verbose = Bench.Nghttpd.start(dir, ["-v"])
IO.puts("\nWINDOW_UPDATE frames received by nghttpd for one 256 MiB download:")

verbose_runs =
  [
    {"h2flow stream/6", fn -> Bench.Run.h2flow_download(verbose.port, "/large", :stream) end},
    {"h2flow request/6", fn -> Bench.Run.h2flow_download(verbose.port, "/large", :whole) end},
    {"curl", fn -> Bench.Run.curl(verbose.port, "/large") end}
  ] ++ if(mint?, do: [{"Mint", fn -> Bench.Mint.download(verbose.port, "/large") end}], else: [])

for {name, fun} <- verbose_runs do
  fun.()
  IO.puts("  #{name}: #{Bench.Nghttpd.window_updates_received(verbose)}")
end

Bench.Nghttpd.stop(verbose)

IO.puts("\n100,000 GETs of a 120-byte file over one connection:")
total = 100_000

gets =
  [{"h2flow, 100 processes", fn -> Bench.Run.h2flow_gets(server.port, "/small", total, 100) end}] ++
    if(mint?,
      do: [
        {"Mint, 1 process, 100 in flight",
         fn -> Bench.Mint.gets(server.port, "/small", total, 100) end}
      ],
      else: []
    )

rates =
  for round <- 1..rounds, {name, fun} <- gets, reduce: %{} do
    acc ->
      {t, _} = Bench.Run.time(fun)
      IO.puts("  round #{round} #{name}: #{round(total / t)} req/s")
      Map.update(acc, name, [total / t], &[total / t | &1])
  end

for {name, _} <- gets do
  IO.puts("  #{name}: median #{round(Bench.Run.median(rates[name]))} req/s")
end

Bench.Nghttpd.stop(server)
File.rm_rf!(dir)
