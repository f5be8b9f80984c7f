defmodule Mix.Tasks.H2flow.Bench do
  @shortdoc "Benchmarks h2flow against the targets of issue 6 (h2load, NIF, memory)"

  @moduledoc """
  Runs h2flow's benchmarks and prints one table, the targets of issue 6 and reference figures
  of other servers next to the numbers. It runs in the `:bench` environment (its preferred
  one), which builds the NIF with cargo's release profile:

      mix h2flow.bench [--runs 3] [--only get,post,...] [--peer NAME=URL[@PID]]... [--quick] [--write]

  A server with a benchmark handler starts in this VM on 127.0.0.1 (h2c, default options);
  `h2load` (Debian: nghttp2-client) drives it from another process. Sections, in the order they
  run (memory first, before load tests have grown the VM's allocators):

    * `memory`: memory per idle connection: `bench/idle_clients.exs` opens 1,000 h2c
      connections from another OS process (preface, SETTINGS, SETTINGS ACK, then nothing);
      the VM's RSS and `:erlang.memory(:total)` before and after, divided by 1,000.
    * `nif`: the time of one `H2Flow.Engine.recv/2` call on 16 KiB and 64 KiB reads of a mixed
      client byte stream (HEADERS of new streams, DATA, WINDOW_UPDATE, PING): median and
      99th percentile over 5,000 calls each.
    * `get`: `h2load -n 200000 -c 10 -m 100` on `GET /` (a 12-byte body): requests per
      second, and the VM's CPU time (user + system, all threads) per request.
    * `post`: the same flags with `-d` a 16 KiB file, to `POST /echo` (reads the body,
      answers its size); also the WINDOW_UPDATE frames sent per 1,000 requests.
    * `slow`: one connection, 64 streams each POSTing 16 KiB to a handler that sleeps 500 ms
      before reading: the WINDOW_UPDATE frames sent and the writes that carried them.
    * `upload`: one 256 MiB POST to `/echo`: seconds and MB/s.
    * `h1`: HTTP/1.1 on the same listener, `h2load --h1 -n 200000 -c 100` (keep-alive, no
      pipelining): `GET /` and the 16 KiB `POST /echo`, requests per second and CPU per
      request.
    * `plug`: `GET /` and the 16 KiB POST as a Plug on h2flow, beside the native handler and
      Bandit serving the same Plug (`mix help h2flow.bench.plug`; needs `PLUG_EBIN`, and
      `BANDIT_EBIN` for Bandit, else skipped).
    * `core`: `cargo bench -p h2flow_core --bench data`: DATA-heavy decoding in GB/s.

  Every h2load row is the median of `--runs` runs (after one warm-up run for `get` and
  `post`); the per-run values follow the table.

  ## Side by side with other servers

  `--peer NAME=URL` (repeatable) runs the `get`, `post`, `upload` and `h1` sections against another
  server too, in the same rounds, interleaved with h2flow's (h2flow, then each peer, round
  after round), and reports each peer's median and the ratio of h2flow's median to it. The
  peer must answer `GET /` with a small body and `POST /echo` by reading the body and answering
  its size, like the benchmark handler. `@PID` (the peer's OS process id) adds its CPU time per
  request. h2flow builds no peer: start it yourself (for example Cowboy from its sources, see
  BENCHMARKS.md), on 127.0.0.1.

  ## Options

    * `--runs N` (default 3): h2load runs per row.
    * `--only LIST`: comma-separated sections to run, e.g. `--only get,post`.
    * `--quick`: small runs (20,000 requests, a 64 MiB upload, 200 idle connections, 1,000 NIF
      calls, one run unless `--runs` is given) to check the tools, not to compare numbers.
    * `--peer NAME=URL[@PID]`: a server to measure beside h2flow (see above).
    * `--write`: also writes the results into BENCHMARKS.md, between its result markers.
  """

  use Mix.Task

  import H2Flow.Bench.Report, only: [row: 5, int: 1, dec: 1, dec: 2, kib: 1, runs_line: 1]

  alias H2Flow.Bench.{Handler, IdleMemory, Load, NifRecv, Report}

  @sections ~w(memory nif get post slow upload h1 plug core)
  @switches [
    runs: :integer,
    only: :string,
    quick: :boolean,
    write: :boolean,
    peer: :keep
  ]

  @impl Mix.Task
  def run(args) do
    opts = parse_args!(args)
    h2load = System.find_executable("h2load")

    if Enum.any?(opts.sections, &(&1 in ~w(get post slow upload h1 plug))) and h2load == nil do
      Mix.raise("h2flow.bench needs h2load on PATH (Debian: apt-get install nghttp2-client)")
    end

    Mix.Task.run("app.start")
    Logger.configure(level: :warning)

    {:ok, server} = H2Flow.start_link(handler: Handler, ip: {127, 0, 0, 1}, port: 0)
    port = H2Flow.port(server)
    dir = Path.join(System.tmp_dir!(), "h2flow-bench")
    File.mkdir_p!(dir)

    ctx = Map.merge(opts, %{server: server, port: port, h2load: h2load, dir: dir})
    header = Report.header(ctx)
    Mix.shell().info(Enum.join(header, "\n") <> "\n")

    results =
      for section <- @sections, section in opts.sections do
        Mix.shell().info("running #{section} ...")
        {section, section(section, ctx)}
      end

    H2Flow.stop(server)
    report = header ++ ["- load average after: #{Report.loadavg()}", ""] ++ Report.table(results)
    Mix.shell().info("\n" <> Enum.join(report, "\n"))
    if opts.write, do: Report.write_results(report)
  end

  defp parse_args!(args) do
    case OptionParser.parse(args, strict: @switches) do
      {opts, [], []} ->
        quick = Keyword.get(opts, :quick, false)
        runs = Keyword.get(opts, :runs, if(quick, do: 1, else: 3))
        sections = opts |> Keyword.get(:only, Enum.join(@sections, ",")) |> String.split(",")

        for s <- sections, s not in @sections do
          Mix.raise("unknown section #{s}; sections: #{Enum.join(@sections, ", ")}")
        end

        if runs < 1, do: Mix.raise("--runs must be at least 1")
        peers = for {:peer, spec} <- opts, do: peer!(spec)

        %{
          quick: quick,
          runs: runs,
          sections: sections,
          peers: peers,
          write: Keyword.get(opts, :write, false)
        }

      {_, [arg | _], _} ->
        Mix.raise("unexpected argument #{arg}; see mix help h2flow.bench")

      {_, _, [{flag, _} | _]} ->
        Mix.raise("invalid option #{flag}; see mix help h2flow.bench")
    end
  end

  # NAME=URL[@PID]
  defp peer!(spec) do
    case Regex.run(~r/\A([^=]+)=(https?:\/\/[^@]+?)\/?(?:@(\d+))?\z/, spec) do
      [_, name, url] -> {name, url, nil}
      [_, name, url, pid] -> {name, url, String.to_integer(pid)}
      nil -> Mix.raise("--peer #{spec}: expected NAME=URL or NAME=URL@PID")
    end
  end

  # --- sections --------------------------------------------------------------------------

  # Each returns rows: %{name, value, target, met, reference} and detail lines.
  defp section("get", ctx) do
    n = if ctx.quick, do: 20_000, else: 200_000
    flags = ["-c", "10", "-m", "100"]
    all = compare(ctx, ["-n", "#{n}" | flags], "/", warmup: div(n, 10))
    runs = all["h2flow"]

    %{
      rows:
        [
          row(
            "GET / (h2load -n #{n} -c 10 -m 100)",
            median(runs, :rps),
            &"#{int(&1)} req/s",
            {:min, 100_000, "≥ 100,000 req/s"},
            "Cowboy 2.13 50k–57k; Bandit 27k–35k"
          ),
          row("GET / server CPU per request", median(runs, :cpu_us), &"#{dec(&1)} µs", nil, "")
        ] ++ peer_rows(ctx, all, "GET /", nil),
      details: ["get: " <> runs_line(runs)] ++ peer_details(ctx, all, "get")
    }
  end

  defp section("post", ctx) do
    n = if ctx.quick, do: 20_000, else: 200_000
    file = Load.data_file(ctx.dir, 16 * 1024)
    flags = ["-c", "10", "-m", "100", "-d", file]
    all = compare(ctx, ["-n", "#{n}" | flags], "/echo", warmup: div(n, 10))
    runs = all["h2flow"]

    %{
      rows:
        [
          row(
            "POST 16 KiB to /echo (same flags)",
            median(runs, :rps),
            &"#{int(&1)} req/s",
            {:min, 50_000, "≥ 50,000 req/s"},
            "Cowboy 2.13 25k–29k; Bandit 10k–11k"
          ),
          row(
            "POST 16 KiB server CPU per request",
            median(runs, :cpu_us),
            &"#{dec(&1)} µs",
            nil,
            ""
          ),
          row(
            "WINDOW_UPDATEs per 1,000 POSTs (steady state)",
            median(runs, :wu_per_1000),
            &dec/1,
            {:max, 40, "≤ 40"},
            "Cowboy 2.13 ≈ 204"
          )
        ] ++ peer_rows(ctx, all, "POST 16 KiB", {:min, 2, "≥ 2 (issue 15)"}),
      details:
        [
          "post: " <> runs_line(runs),
          "post WINDOW_UPDATEs per 1,000 requests per run: " <>
            Enum.map_join(runs, " / ", &dec(&1.wu_per_1000))
        ] ++ peer_details(ctx, all, "post")
    }
  end

  defp section("slow", ctx) do
    file = Load.data_file(ctx.dir, 16 * 1024)
    args = ["-n", "64", "-c", "1", "-m", "64", "-d", file]
    runs = compare(%{ctx | peers: []}, args, "/echo?sleep=500", warmup: nil)["h2flow"]
    wu = median(runs, :wu)

    %{
      rows: [
        row(
          "64 × 16 KiB, handler sleeps 500 ms: WINDOW_UPDATEs",
          wu,
          &int/1,
          {:max, 2, "≤ 2"},
          "Cowboy 2.13 62 (in 23 segments); Bandit 2"
        ),
        row(
          "  … writes carrying WINDOW_UPDATEs",
          median(runs, :wu_writes),
          &int/1,
          {:max, 1, "1"},
          ""
        )
      ],
      details: [
        "slow: " <> Enum.map_join(runs, " / ", &"#{dec(&1.seconds, 3)} s") <> " per run",
        "slow WINDOW_UPDATEs (connection + stream, the preface's included) per run: " <>
          Enum.map_join(runs, " / ", &"#{&1.wu} (#{&1.wu_conn} + #{&1.wu_stream})") <>
          "; writes with WINDOW_UPDATEs (after the preface): " <>
          Enum.map_join(runs, " / ", &int(&1.wu_writes)) <>
          "; all writes: " <> Enum.map_join(runs, " / ", &int(&1.writes))
      ]
    }
  end

  defp section("upload", ctx) do
    mib = if ctx.quick, do: 64, else: 256
    file = Load.data_file(ctx.dir, mib * 1024 * 1024)
    all = compare(ctx, ["-n", "1", "-c", "1", "-d", file], "/echo", warmup: nil)
    runs = all["h2flow"]
    seconds = median(runs, :seconds)
    target = if mib == 256, do: {:max, 0.25, "≤ 0.25 s"}, else: nil
    shown = &"#{dec(&1, 3)} s (#{int(mib * 1_048_576 / &1 / 1.0e6)} MB/s)"

    peers =
      for {name, _, _} <- ctx.peers do
        peer = median(all[name], :seconds)
        row("  … #{name}: one #{mib} MiB upload", peer, shown, nil, "h2flow's time / #{name}'s: #{dec(seconds / peer, 2)}")
      end

    %{
      rows: [
        row("one #{mib} MiB upload to /echo", seconds, shown, target, "Cowboy 2.13 0.33 s; Bandit 1.0–1.1 s")
        | peers
      ],
      details:
        for {name, runs} <- Enum.sort(all) do
          "upload, #{name}: " <> Enum.map_join(runs, " / ", &"#{dec(&1.seconds, 3)} s") <>
            if(name == "h2flow",
              do: "; WINDOW_UPDATEs per run: " <> Enum.map_join(runs, " / ", &int(&1.wu)),
              else: ""
            )
        end
    }
  end

  # HTTP/1.1 (issue 18): one request at a time per connection, 100 connections.
  defp section("h1", ctx) do
    n = if ctx.quick, do: 20_000, else: 200_000
    file = Load.data_file(ctx.dir, 16 * 1024)
    flags = ["--h1", "-c", "100"]

    for {what, extra, path} <- [{"GET /", [], "/"}, {"POST 16 KiB", ["-d", file], "/echo"}],
        reduce: %{rows: [], details: []} do
      acc ->
        all = compare(ctx, ["-n", "#{n}" | flags ++ extra], path, warmup: div(n, 10))
        runs = all["h2flow"]
        label = "HTTP/1.1 #{what} (h2load --h1 -n #{n} -c 100)"

        rows =
          [
            row(label, median(runs, :rps), &"#{int(&1)} req/s", nil, ""),
            row("  … server CPU per request", median(runs, :cpu_us), &"#{dec(&1)} µs", nil, "")
          ] ++ peer_rows(ctx, all, "HTTP/1.1 #{what}", {:min, 1, "≥ 1 (issue 18)"})

        details = ["h1 #{what}: " <> runs_line(runs)] ++ peer_details(ctx, all, "h1 #{what}")
        %{rows: acc.rows ++ rows, details: acc.details ++ details}
    end
  end

  defp section("nif", ctx) do
    samples = if ctx.quick, do: 1_000, else: 5_000
    results = NifRecv.run([16_384, 65_536], samples)

    rows =
      for {size, r} <- Enum.sort(results) do
        target = if size == 65_536, do: {:max, 200, "p99 ≤ 200 µs"}, else: nil

        row(
          "Engine.recv/2 of #{div(size, 1024)} KiB (median / p99)",
          r.p99_us,
          fn _ -> "#{dec(r.median_us)} / #{dec(r.p99_us)} µs" end,
          target,
          ""
        )
      end

    %{
      rows: rows,
      details:
        for {size, r} <- Enum.sort(results) do
          "nif #{div(size, 1024)} KiB: #{r.samples} calls, #{dec(r.events)} events per call, " <>
            "mean #{dec(r.mean_us)} µs, max #{dec(r.max_us)} µs, " <>
            "#{int(size / r.median_us)} MB/s at the median"
        end
    }
  end

  defp section("memory", ctx) do
    n = if ctx.quick, do: 200, else: 1_000
    script = Path.expand("bench/idle_clients.exs")
    m = IdleMemory.run(ctx.server, ctx.port, n, script)

    %{
      rows: [
        row(
          "memory per idle connection (VM RSS, #{n} connections)",
          m.rss / n,
          &kib/1,
          {:max, 20 * 1024, "≤ 20 KiB"},
          ""
        ),
        row("  … of which BEAM-allocated (:erlang.memory)", m.erlang / n, &kib/1, nil, "")
      ],
      details: [
        "memory per idle connection: RSS #{kib(m.rss / n)}; :erlang.memory(:total) " <>
          "#{kib(m.erlang / n)} (processes #{kib(m.erlang_processes / n)}, binaries " <>
          "#{kib(m.erlang_binary / n)}); connection processes' Process.info memory " <>
          "#{kib(m.process_info / n)} (#{m.new_processes} new processes); sockets' " <>
          "port_info memory #{kib(m.port_info / n)}; outside the BEAM's allocators (RSS − " <>
          ":erlang.memory: the engine's Rust heap, malloc overhead) " <>
          kib((m.rss - m.erlang) / n)
      ]
    }
  end

  # The Plug rows (issue 17), in a module of their own: see `mix help h2flow.bench.plug`.
  defp section("plug", ctx), do: Mix.Tasks.H2flow.Bench.Plug.section(ctx)

  defp section("core", ctx) do
    cargo = Mix.Tasks.Compile.H2flowNative.cargo!()
    time = if ctx.quick, do: "1", else: "3"

    args =
      ~w(bench -p h2flow_core --bench data -- --warm-up-time 1 --noplot --measurement-time) ++
        [time]

    Mix.shell().info("  cargo #{Enum.join(args, " ")}")
    {output, status} = System.cmd(cargo, args, stderr_to_stdout: true)
    if status != 0, do: Mix.raise("cargo bench failed:\n" <> output)

    results =
      for [name, value, unit] <-
            Regex.scan(
              ~r/data\/(\w+)\s+time:\s+\[[^\]]*\]\s+thrpt:\s+\[\S+ \S+ (\S+) (\S+)/u,
              output,
              capture: :all_but_first
            ),
          do: {name, gb_per_s(value, unit)}

    rows =
      for {name, gbs} <- results do
        target = if name == "frame_decode_16MiB", do: {:min, 2, "≥ 2 GB/s"}, else: nil
        row("h2flow_core data/#{name}", gbs, &"#{dec(&1)} GB/s", target, "")
      end

    %{rows: rows, details: []}
  end

  defp gb_per_s(value, unit) do
    {v, ""} = Float.parse(value)

    scale = %{
      "GiB/s" => 1.073741824,
      "MiB/s" => 1.048576e-3,
      "KiB/s" => 1.024e-6,
      "B/s" => 1.0e-9
    }

    v * Map.fetch!(scale, unit)
  end

  # --- runs, interleaved with the peers' ---------------------------------------------------

  # `ctx.runs` rounds of h2load with `args` on `path`: h2flow, then each peer, every round, so
  # that whatever else loads the machine hits them alike. Returns the runs by server name.
  defp compare(ctx, args, path, warmup: warmup) do
    targets = [{"h2flow", "http://127.0.0.1:#{ctx.port}", :self} | ctx.peers]

    if warmup do
      for target <- targets, do: run(ctx, target, List.replace_at(args, 1, "#{warmup}"), path)
    end

    for i <- 1..ctx.runs, {name, _, _} = target <- targets do
      r = run(ctx, target, args, path)
      rate = if r.succeeded > 100, do: "#{int(r.rps)} req/s, ", else: ""
      Mix.shell().info("  run #{i}, #{name}: #{rate}#{dec(r.seconds, 3)} s")
      {name, r}
    end
    |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
  end

  # A peer: what h2load reports, and its CPU if its OS pid is known.
  defp run(ctx, {name, base, pid}, args, path) when name != "h2flow",
    do: Load.run!(ctx.h2load, args, base <> path, pid)

  # h2flow: also its counters around the run.
  defp run(ctx, {_, base, :self}, args, path) do
    stats0 = settled_stats(ctx.server)
    r = Load.run!(ctx.h2load, args, base <> path)
    stats1 = settled_stats(ctx.server)
    wu = fn s -> s.window_update_frames.connection + s.window_update_frames.stream end
    delta = fn f -> f.(stats1) - f.(stats0) end
    wu_total = delta.(wu)
    check_body_bytes!(args, r.succeeded, delta.(&(&1.data_bytes_received + &1.http1.body_bytes_received)))

    Map.merge(r, %{
      wu: wu_total,
      wu_conn: delta.(& &1.window_update_frames.connection),
      wu_stream: delta.(& &1.window_update_frames.stream),
      wu_writes: delta.(& &1.flushes_with_window_updates),
      writes: delta.(& &1.writes),
      wu_per_1000: wu_total / r.succeeded * 1000
    })
  end

  # Each peer's median, and h2flow's median over it.
  defp peer_rows(ctx, all, kind, target) do
    ours = median(all["h2flow"], :rps)

    for {name, _, _} <- ctx.peers do
      theirs = median(all[name], :rps)
      cpu = all[name] |> Enum.map(& &1.cpu_us) |> Enum.reject(&is_nil/1)
      cpu = if cpu != [], do: ", #{dec(Load.median(cpu))} µs CPU/req", else: ""

      [
        row("  … #{kind}, #{name}", theirs, &"#{int(&1)} req/s#{cpu}", nil, ""),
        row("  … #{kind}, h2flow / #{name}", ours / theirs, &dec(&1, 2), target, "ratio of the medians")
      ]
    end
    |> List.flatten()
  end

  defp peer_details(ctx, all, section) do
    for {name, _, _} <- ctx.peers do
      ratios = Enum.zip_with(all["h2flow"], all[name], &dec(&1.rps / &2.rps, 2))
      "#{section}, #{name}: " <> runs_line(all[name]) <> "; h2flow / #{name} per round: " <> Enum.join(ratios, " / ")
    end
  end

  # The server received every byte h2load was to send: a wrong file would measure other work.
  defp check_body_bytes!(args, requests, received) do
    with [_, file | _] <- Enum.drop_while(args, &(&1 != "-d")),
         expected = File.stat!(file).size * requests,
         true <- received != expected do
      Mix.raise("the server received #{received} body bytes, expected #{expected}")
    end
  end

  # Counters once every connection of the last run has closed: a closing connection hands its
  # counters to the server's stats process as it exits.
  defp settled_stats(server, tries \\ 500) do
    stats = H2Flow.stats(server)

    cond do
      stats.connections == 0 ->
        stats

      tries == 0 ->
        Mix.raise("connections still open after h2load finished")

      true ->
        Process.sleep(10)
        settled_stats(server, tries - 1)
    end
  end

  defp median(runs, key), do: Load.median(runs, key)
end
