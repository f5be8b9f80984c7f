defmodule Mix.Tasks.H2flow.Bench do
  @shortdoc "Benchmarks h2flow against the targets of issue 6 (h2load, NIF, memory)"

  @moduledoc """
  Runs h2flow's benchmarks and prints one table, the targets of issue 6 and reference figures
  of other servers next to the numbers. It runs in the `:bench` environment (its preferred
  one), which builds the NIF with cargo's release profile:

      mix h2flow.bench [--runs 3] [--only get,post,...] [--quick] [--write]

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
    * `plug`: `GET /` and the 16 KiB POST as a Plug on h2flow, beside the native handler and
      Bandit serving the same Plug (`mix help h2flow.bench.plug`; needs `PLUG_EBIN`, and
      `BANDIT_EBIN` for Bandit, else skipped).
    * `core`: `cargo bench -p h2flow_core --bench data`: DATA-heavy decoding in GB/s.

  Every h2load row is the median of `--runs` runs (after one warm-up run for `get` and
  `post`); the per-run values follow the table.

  ## Options

    * `--runs N` (default 3): h2load runs per row.
    * `--only LIST`: comma-separated sections to run, e.g. `--only get,post`.
    * `--quick`: small runs (20,000 requests, a 64 MiB upload, 200 idle connections, 1,000 NIF
      calls, one run unless `--runs` is given) to check the tools, not to compare numbers.
    * `--write`: also writes the results into BENCHMARKS.md, between its result markers.
  """

  use Mix.Task

  alias Mix.Tasks.H2flow.Bench.{Handler, IdleMemory, NifRecv}

  @sections ~w(memory nif get post slow upload plug core)
  @switches [runs: :integer, only: :string, quick: :boolean, write: :boolean]
  @markers {"<!-- results:begin -->", "<!-- results:end -->"}

  @impl Mix.Task
  def run(args) do
    opts = parse_args!(args)
    h2load = System.find_executable("h2load")

    if Enum.any?(opts.sections, &(&1 in ~w(get post slow upload plug))) and h2load == nil do
      Mix.raise("h2flow.bench needs h2load on PATH (Debian: apt-get install nghttp2-client)")
    end

    Mix.Task.run("app.start")
    Logger.configure(level: :warning)

    {:ok, server} = H2Flow.start_link(handler: Handler, ip: {127, 0, 0, 1}, port: 0)
    port = H2Flow.port(server)
    dir = Path.join(System.tmp_dir!(), "h2flow-bench")
    File.mkdir_p!(dir)

    ctx = Map.merge(opts, %{server: server, port: port, h2load: h2load, dir: dir})
    header = header(ctx)
    Mix.shell().info(Enum.join(header, "\n") <> "\n")

    results =
      for section <- @sections, section in opts.sections do
        Mix.shell().info("running #{section} ...")
        {section, section(section, ctx)}
      end

    H2Flow.stop(server)
    report = header ++ ["- load average after: #{loadavg()}", ""] ++ table(results)
    Mix.shell().info("\n" <> Enum.join(report, "\n"))
    if opts.write, do: write_results(report)
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
        %{quick: quick, runs: runs, sections: sections, write: Keyword.get(opts, :write, false)}

      {_, [arg | _], _} ->
        Mix.raise("unexpected argument #{arg}; see mix help h2flow.bench")

      {_, _, [{flag, _} | _]} ->
        Mix.raise("invalid option #{flag}; see mix help h2flow.bench")
    end
  end

  # --- sections --------------------------------------------------------------------------

  # Each returns rows: %{name, value, target, met, reference} and detail lines.
  defp section("get", ctx) do
    n = if ctx.quick, do: 20_000, else: 200_000
    flags = ["-c", "10", "-m", "100"]
    runs = load_runs(ctx, ["-n", "#{n}" | flags], "/", warmup: div(n, 10))

    %{
      rows: [
        row(
          "GET / (h2load -n #{n} -c 10 -m 100)",
          median(runs, :rps),
          &"#{int(&1)} req/s",
          {:min, 100_000, "≥ 100,000 req/s"},
          "Cowboy 2.13 50k–57k; Bandit 27k–35k"
        ),
        row("GET / server CPU per request", median(runs, :cpu_us), &"#{dec(&1)} µs", nil, "")
      ],
      details: ["get: " <> runs_line(runs)]
    }
  end

  defp section("post", ctx) do
    n = if ctx.quick, do: 20_000, else: 200_000
    file = data_file(ctx.dir, 16 * 1024)
    flags = ["-c", "10", "-m", "100", "-d", file]
    runs = load_runs(ctx, ["-n", "#{n}" | flags], "/echo", warmup: div(n, 10))

    %{
      rows: [
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
      ],
      details: [
        "post: " <> runs_line(runs),
        "post WINDOW_UPDATEs per 1,000 requests per run: " <>
          Enum.map_join(runs, " / ", &dec(&1.wu_per_1000))
      ]
    }
  end

  defp section("slow", ctx) do
    file = data_file(ctx.dir, 16 * 1024)
    args = ["-n", "64", "-c", "1", "-m", "64", "-d", file]
    runs = load_runs(ctx, args, "/echo?sleep=500", warmup: nil)
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
    file = data_file(ctx.dir, mib * 1024 * 1024)
    runs = load_runs(ctx, ["-n", "1", "-c", "1", "-d", file], "/echo", warmup: nil)
    seconds = median(runs, :seconds)
    target = if mib == 256, do: {:max, 0.25, "≤ 0.25 s"}, else: nil

    %{
      rows: [
        row(
          "one #{mib} MiB upload to /echo",
          seconds,
          &"#{dec(&1, 3)} s (#{int(mib * 1_048_576 / &1 / 1.0e6)} MB/s)",
          target,
          "Cowboy 2.13 0.33 s; Bandit 1.0–1.1 s"
        )
      ],
      details: [
        "upload: " <>
          Enum.map_join(runs, " / ", &"#{dec(&1.seconds, 3)} s") <>
          "; WINDOW_UPDATEs per run: " <> Enum.map_join(runs, " / ", &int(&1.wu))
      ]
    }
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

  # --- h2load runs -----------------------------------------------------------------------

  defp load_runs(ctx, args, path, warmup: warmup) do
    url = "http://127.0.0.1:#{ctx.port}#{path}"

    if warmup do
      args = List.replace_at(args, 1, "#{warmup}")
      load_run(ctx, args ++ [url])
    end

    for i <- 1..ctx.runs do
      r = load_run(ctx, args ++ [url])
      rate = if r.succeeded > 100, do: "#{int(r.rps)} req/s, ", else: ""
      Mix.shell().info("  run #{i}: #{rate}#{dec(r.seconds, 3)} s")
      r
    end
  end

  # One h2load run: its report, and the server's CPU time and counters around it.
  defp load_run(ctx, args) do
    stats0 = settled_stats(ctx.server)
    cpu0 = cpu_us()
    {output, status} = System.cmd(ctx.h2load, ["-N", "60" | args], stderr_to_stdout: true)
    cpu1 = cpu_us()
    if status != 0, do: Mix.raise("h2load #{Enum.join(args, " ")} failed:\n" <> output)
    stats1 = settled_stats(ctx.server)
    report = parse_h2load!(output)

    if report.failed > 0 or report.succeeded == 0 do
      Mix.raise("h2load #{Enum.join(args, " ")}: requests failed:\n" <> output)
    end

    wu = fn s -> s.window_update_frames.connection + s.window_update_frames.stream end
    delta = fn f -> f.(stats1) - f.(stats0) end
    wu_total = delta.(wu)
    check_body_bytes!(args, report.succeeded, delta.(& &1.data_bytes_received))

    Map.merge(report, %{
      cpu_us: (cpu1 - cpu0) / report.succeeded,
      wu: wu_total,
      wu_conn: delta.(& &1.window_update_frames.connection),
      wu_stream: delta.(& &1.window_update_frames.stream),
      wu_writes: delta.(& &1.flushes_with_window_updates),
      writes: delta.(& &1.writes),
      wu_per_1000: wu_total / report.succeeded * 1000
    })
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

  # The summary lines of h2load 1.52's report.
  defp parse_h2load!(output) do
    with [_, t, unit] <- Regex.run(~r/finished in ([\d.]+)(s|ms|us)/, output),
         [_ | counts] <-
           Regex.run(
             ~r/requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/,
             output
           ) do
      {t, ""} = Float.parse(t)
      seconds = t / %{"s" => 1, "ms" => 1_000, "us" => 1_000_000}[unit]
      [total, succeeded, failed] = Enum.map(counts, &String.to_integer/1)

      %{
        seconds: seconds,
        total: total,
        succeeded: succeeded,
        failed: failed,
        rps: succeeded / seconds
      }
    else
      _ -> Mix.raise("cannot read h2load's output:\n" <> output)
    end
  end

  # User + system CPU time of this OS process (every scheduler and I/O thread), in µs.
  defp cpu_us do
    case File.read("/proc/self/stat") do
      {:ok, stat} ->
        # Fields after the command name, which is in parentheses and may contain spaces:
        # state is field 3, utime 14, stime 15 (proc(5)).
        [_, rest] = String.split(stat, ") ", parts: 2)
        fields = String.split(rest, " ")
        ticks = String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
        ticks * 1_000_000 / clock_ticks()

      {:error, _} ->
        # No procfs: the VM's own sum over its threads, in ms.
        {ms, _} = :erlang.statistics(:runtime)
        ms * 1_000
    end
  end

  # Ticks per second of utime and stime (USER_HZ): 100 on every common Linux build.
  defp clock_ticks do
    with path when is_binary(path) <- System.find_executable("getconf"),
         {out, 0} <- System.cmd(path, ["CLK_TCK"]),
         {n, _} <- Integer.parse(out) do
      n
    else
      _ -> 100
    end
  end

  # A file of `size` bytes, made once and kept in the temp dir between runs.
  defp data_file(dir, size) do
    path = Path.join(dir, "body-#{size}.bin")

    unless match?({:ok, %File.Stat{size: ^size}}, File.stat(path)) do
      block = :binary.copy("h2flow!\n", 131_072)

      File.open!(path, [:write, :binary], fn f ->
        for _ <- 1..div(size, byte_size(block))//1, do: IO.binwrite(f, block)
        IO.binwrite(f, binary_part(block, 0, rem(size, byte_size(block))))
      end)
    end

    path
  end

  # --- the report ------------------------------------------------------------------------

  defp row(name, value, format, target, reference) do
    met =
      case target do
        nil -> nil
        {:min, t, _} -> value >= t
        {:max, t, _} -> value <= t
      end

    %{
      name: name,
      value: value,
      shown: format.(value),
      target: if(target, do: elem(target, 2), else: ""),
      met: met,
      reference: reference
    }
  end

  defp table(results) do
    rows = Enum.flat_map(results, fn {_, r} -> r.rows end)
    details = Enum.flat_map(results, fn {_, r} -> r.details end)
    met = %{nil => "", true => "yes", false => "no"}

    head = "| benchmark | result | target | met | reference (REFERENCE.md) |"

    [head, "|---|---|---|---|---|"] ++
      Enum.map(
        rows,
        &"| #{&1.name} | #{&1.shown} | #{&1.target} | #{met[&1.met]} | #{&1.reference} |"
      ) ++
      ["" | Enum.map(details, &("- " <> &1))]
  end

  defp header(ctx) do
    profile = H2Flow.Native.profile()

    warning =
      if profile != :release,
        do: ["- WARNING: the NIF is the #{profile} build; run in MIX_ENV=bench for real numbers"],
        else: []

    [
      "h2flow benchmarks, #{DateTime.utc_now() |> DateTime.truncate(:second)}" <>
        if(ctx.quick, do: " (--quick: tool check, not comparable)", else: ""),
      "- machine: #{:erlang.system_info(:logical_processors_available)} × #{cpu_model()}, " <>
        "#{os()}; load average before: #{loadavg()}",
      "- Erlang/OTP #{:erlang.system_info(:otp_release)} " <>
        "(erts #{:erlang.system_info(:version)}), " <>
        "Elixir #{System.version()}, #{:erlang.system_info(:schedulers_online)} schedulers, " <>
        "NIF profile #{profile}, #{h2load_version(ctx.h2load)}",
      "- h2load rows: median of #{ctx.runs} run(s), server on 127.0.0.1 (h2c, default options)"
    ] ++ warning
  end

  defp cpu_model do
    with {:ok, info} <- File.read("/proc/cpuinfo"),
         [_, model] <- Regex.run(~r/^model name\s*:\s*(.+)$/m, info) do
      String.trim(model)
    else
      _ -> to_string(:erlang.system_info(:system_architecture))
    end
  end

  defp os do
    case File.read("/proc/sys/kernel/osrelease") do
      {:ok, release} -> "Linux #{String.trim(release)}"
      _ -> inspect(:os.type())
    end
  end

  defp loadavg do
    case File.read("/proc/loadavg") do
      {:ok, s} -> s |> String.split(" ") |> Enum.take(3) |> Enum.join(" ")
      _ -> "?"
    end
  end

  defp h2load_version(nil), do: "no h2load"

  defp h2load_version(h2load) do
    {out, _} = System.cmd(h2load, ["--version"], stderr_to_stdout: true)
    out |> String.split("\n") |> hd() |> String.trim()
  end

  defp write_results(report) do
    path = "BENCHMARKS.md"
    {open, close} = @markers
    block = Enum.join([open, "" | report] ++ ["", close], "\n")

    text =
      case File.read(path) do
        {:ok, text} ->
          case String.split(text, [open, close]) do
            [before, _old, rest] -> before <> block <> rest
            _ -> Mix.raise("#{path} lacks the markers #{open} … #{close}")
          end

        {:error, :enoent} ->
          "# h2flow benchmarks\n\n## Results\n\n" <> block <> "\n"
      end

    File.write!(path, text)
    Mix.shell().info("\nwrote the results into #{path}")
  end

  # --- numbers ---------------------------------------------------------------------------

  defp median(runs, key) do
    sorted = runs |> Enum.map(&Map.fetch!(&1, key)) |> Enum.sort()
    n = length(sorted)

    if rem(n, 2) == 1,
      do: Enum.at(sorted, div(n, 2)),
      else: (Enum.at(sorted, div(n, 2) - 1) + Enum.at(sorted, div(n, 2))) / 2
  end

  defp runs_line(runs) do
    Enum.map_join(runs, " / ", &"#{int(&1.rps)} req/s (#{dec(&1.cpu_us)} µs CPU)")
  end

  defp int(x) do
    x
    |> round()
    |> Integer.to_string()
    |> String.reverse()
    |> String.replace(~r/(\d{3})(?=\d)/, "\\1,")
    |> String.reverse()
  end

  defp dec(x, digits \\ 1), do: :erlang.float_to_binary(x / 1, decimals: digits)

  defp kib(bytes) when abs(bytes) < 1024, do: "#{round(bytes)} B"
  defp kib(bytes), do: "#{dec(bytes / 1024)} KiB"
end

defmodule Mix.Tasks.H2flow.Bench.Handler do
  @moduledoc false
  # The handler `mix h2flow.bench` serves. GET / answers a 12-byte body, like the hello-world
  # handlers the reference figures were measured with (the demo's / is a 9 KB page). POST
  # /echo reads the body piece by piece and answers its size, like H2Flow.Demo's; with
  # ?sleep=MS it sleeps first, the slow reader of the flow-control scenario.

  @behaviour H2Flow.Handler

  alias H2Flow.Req

  @impl true
  def init(req, state) do
    req =
      case {Req.method(req), Req.path(req)} do
        {"GET", "/"} -> Req.reply(200, %{"content-type" => "text/plain"}, "Hello world!", req)
        {"POST", "/echo"} -> echo(req)
        _ -> Req.reply(404, %{"content-type" => "text/plain"}, "not found\n", req)
      end

    {:ok, req, state}
  end

  defp echo(req) do
    case List.keyfind(Req.parse_qs(req), "sleep", 0) do
      {_, ms} -> Process.sleep(String.to_integer(ms))
      nil -> :ok
    end

    case read_all(req, 0) do
      {:ok, size, req} -> Req.reply(200, %{"content-type" => "text/plain"}, "#{size}", req)
      {:error, :closed} -> req
    end
  end

  defp read_all(req, size) do
    case Req.read_body(req) do
      {:ok, data, req} -> {:ok, size + byte_size(data), req}
      {:more, data, req} -> read_all(req, size + byte_size(data))
      {:error, :closed} = error -> error
    end
  end
end

defmodule Mix.Tasks.H2flow.Bench.NifRecv do
  @moduledoc false
  # Times single H2Flow.Engine.recv/2 calls on fixed-size reads of a client's byte stream, as
  # the connection process makes them; answering, consuming and flushing happen between calls,
  # untimed. Frames straddle reads, as they do on a socket.

  @doc false
  @spec run([pos_integer()], pos_integer()) :: %{pos_integer() => map()}
  def run(sizes, samples) do
    stream = client_stream(4 * 1024 * 1024)
    Map.new(sizes, fn size -> {size, measure(stream, size, samples)} end)
  end

  defp measure(stream, size, samples) do
    reads = for <<read::binary-size(size) <- stream>>, do: read
    calls = rounds(reads, samples, [])
    events = calls |> Enum.map(&elem(&1, 1)) |> Enum.sum()

    sorted =
      calls
      |> Enum.map(&:erlang.convert_time_unit(elem(&1, 0), :native, :nanosecond))
      |> Enum.sort()

    n = length(sorted)
    us = fn ns -> ns / 1_000 end

    %{
      samples: n,
      median_us: us.(Enum.at(sorted, div(n, 2))),
      p99_us: us.(Enum.at(sorted, ceil(n * 0.99) - 1)),
      mean_us: us.(Enum.sum(sorted) / n),
      max_us: us.(List.last(sorted)),
      events: events / n
    }
  end

  # One connection per round over the whole stream, until `samples` calls were timed: {time,
  # events returned} per call. The first read (the preface) is not timed: it is not a
  # steady-state call.
  defp rounds(_reads, samples, calls) when length(calls) >= samples,
    do: Enum.take(calls, samples)

  defp rounds([first | rest], samples, calls) do
    {:ok, engine} = H2Flow.Engine.new()
    _ = H2Flow.Engine.flush(engine)
    {:ok, evs} = H2Flow.Engine.recv(engine, first)
    serve(engine, evs)

    calls =
      Enum.reduce(rest, calls, fn read, calls ->
        t0 = :erlang.monotonic_time()
        result = H2Flow.Engine.recv(engine, read)
        t1 = :erlang.monotonic_time()
        {:ok, evs} = result
        serve(engine, evs)
        [{t1 - t0, length(evs)} | calls]
      end)

    rounds([first | rest], samples, calls)
  end

  defp serve(engine, events) do
    for event <- events do
      case event do
        {:headers, id, _, true} ->
          :ok = H2Flow.Engine.send_headers(engine, id, [{":status", "200"}], true)

        {:data, id, data, end?} ->
          :ok = H2Flow.Engine.consume(engine, id, byte_size(data))
          if end?, do: :ok = H2Flow.Engine.send_headers(engine, id, [{":status", "200"}], true)

        _ ->
          :ok
      end
    end

    _ = H2Flow.Engine.flush(engine)
  end

  # Preface, SETTINGS, SETTINGS ACK, then requests until `size` bytes: of every 4, 2 GETs, a
  # POST of 4 KiB (one DATA frame) and a POST of 48 KiB (three); a connection WINDOW_UPDATE
  # after every 8th request and a PING after every 32nd.
  defp client_stream(size) do
    head = ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", frame(4, 0, 0, ""), frame(4, 1, 0, "")]
    IO.iodata_to_binary([head | requests(0, size - IO.iodata_length(head), [])])
  end

  defp requests(_i, left, acc) when left <= 0, do: Enum.reverse(acc)

  defp requests(i, left, acc) do
    id = 2 * i + 1

    frames =
      case rem(i, 4) do
        r when r in [0, 1] -> [headers(id, "GET", "/assets/#{i}.js", nil)]
        2 -> [headers(id, "POST", "/echo", 4096), data(id, 4096, true)]
        3 -> [headers(id, "POST", "/echo", 49_152) | for(k <- 1..3, do: data(id, 16_384, k == 3))]
      end

    frames = if rem(i, 8) == 7, do: frames ++ [frame(8, 0, 0, <<65_535::32>>)], else: frames
    frames = if rem(i, 32) == 31, do: frames ++ [frame(6, 0, 0, <<i::64>>)], else: frames
    requests(i + 1, left - IO.iodata_length(frames), [frames | acc])
  end

  # A header block of static-table references and literals without indexing (RFC 7541 6.1,
  # 6.2.2), no Huffman: :method, :scheme http, :path, :authority, user-agent, accept.
  defp headers(id, method, path, content_length) do
    fields = [
      if(method == "GET", do: <<0x82>>, else: <<0x83>>),
      <<0x86>>,
      literal(4, path),
      literal(1, "127.0.0.1:8080"),
      literal(58, "h2flow-bench/1.0"),
      literal(19, "*/*"),
      if(content_length, do: literal(28, Integer.to_string(content_length)), else: "")
    ]

    # END_HEADERS, and END_STREAM when there is no body.
    flags = if content_length, do: 0x4, else: 0x5
    frame(1, flags, id, IO.iodata_to_binary(fields))
  end

  defp data(id, size, end?), do: frame(0, if(end?, do: 1, else: 0), id, :binary.copy("x", size))

  defp literal(index, value) when index < 15, do: [<<index>>, string(value)]
  defp literal(index, value), do: [<<15, index - 15>>, string(value)]

  defp string(value) when byte_size(value) < 127, do: [<<byte_size(value)>>, value]

  defp frame(type, flags, id, payload),
    do: [<<byte_size(payload)::24, type::8, flags::8, 0::1, id::31>>, payload]
end

defmodule Mix.Tasks.H2flow.Bench.IdleMemory do
  @moduledoc false
  # Memory per idle connection: bench/idle_clients.exs opens the connections from another OS
  # process (its sockets must not count), completes the handshake and goes quiet; this VM's
  # memory is taken before and after, each time after a garbage collection of every process.

  @doc false
  @spec run(H2Flow.server(), :inet.port_number(), pos_integer(), Path.t()) :: map()
  def run(server, port, n, script) do
    # A few connections first, so that what happens once (loading the connection code, the
    # first allocator carriers) is not counted as per-connection memory.
    port |> open(20, script) |> close(server)

    before = snapshot()
    client = open(port, n, script)
    # Idle connections hibernate after a tick without traffic (1 s): measure them as they
    # stay, not as the handshake left them.
    Process.sleep(2_500)
    later = snapshot()
    new_processes = later.processes -- before.processes
    new_ports = (later.ports -- before.ports) -- [client]

    result = %{
      rss: later.rss - before.rss,
      erlang: later.erlang[:total] - before.erlang[:total],
      erlang_processes: later.erlang[:processes] - before.erlang[:processes],
      erlang_binary: later.erlang[:binary] - before.erlang[:binary],
      new_processes: length(new_processes),
      process_info: sum_info(new_processes, &Process.info(&1, :memory)),
      port_info: sum_info(new_ports, &:erlang.port_info(&1, :memory))
    }

    close(client, server)
    result
  end

  # Returns once the n connections are idle: the script is ready once every connection
  # answered its PING, sent after everything else (polling H2Flow.stats/1 instead would make
  # every connection build a stats map, and the garbage would count as its memory).
  defp open(port, n, script) do
    elixir = System.find_executable("elixir") || Mix.raise("elixir is not on PATH")

    client =
      Port.open({:spawn_executable, elixir}, [
        :binary,
        :exit_status,
        {:line, 4096},
        args: [script, Integer.to_string(port), Integer.to_string(n)]
      ])

    await_ready(client)
    client
  end

  defp close(client, server) do
    Port.close(client)
    await(fn -> H2Flow.stats(server).connections == 0 end, "connections to close")
  end

  defp snapshot do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)

    %{
      rss: rss(),
      erlang: :erlang.memory(),
      processes: Process.list(),
      ports: Port.list()
    }
  end

  defp sum_info(items, info) do
    Enum.sum(for item <- items, {:memory, bytes} <- [info.(item)], do: bytes)
  end

  defp rss do
    with {:ok, status} <- File.read("/proc/self/status"),
         [_, kb] <- Regex.run(~r/^VmRSS:\s+(\d+) kB/m, status) do
      String.to_integer(kb) * 1024
    else
      _ -> 0
    end
  end

  defp await_ready(client) do
    receive do
      {^client, {:data, {:eol, "ready"}}} ->
        :ok

      {^client, {:data, {_, line}}} ->
        Mix.shell().info("  idle_clients: " <> line)
        await_ready(client)

      {^client, {:exit_status, s}} ->
        Mix.raise("bench/idle_clients.exs exited with status #{s}")
    after
      120_000 -> Mix.raise("bench/idle_clients.exs did not get ready in 120 s")
    end
  end

  defp await(done?, what, tries \\ 3_000) do
    cond do
      done?.() ->
        :ok

      tries == 0 ->
        Mix.raise("timed out waiting for #{what}")

      true ->
        Process.sleep(10)
        await(done?, what, tries - 1)
    end
  end
end
