defmodule Mix.Tasks.H2flow.Bench.Plug do
  @shortdoc "Benchmarks a Plug on h2flow against the native handler path and Bandit"

  @moduledoc """
  The Plug rows of the benchmark (issue 17): the same hello-world `GET /` and 16 KiB
  `POST /echo` served three ways in one VM, runs interleaved: by h2flow's native handler
  (`H2Flow.Bench.Handler`), by a Plug on h2flow (`plug:`), and by the same Plug on
  Bandit when Bandit is in the code path. It runs in the `:bench` environment (release NIF):

      PLUG_EBIN=... [BANDIT_EBIN=...] mix h2flow.bench.plug [--requests N] [--runs N] [--quick]

  h2flow does not depend on Plug or Bandit: `PLUG_EBIN` (plug, mime, plug_crypto, telemetry)
  and `BANDIT_EBIN` (bandit, thousand_island, hpax, websock and Plug's) name ebin directories,
  colon-separated, of builds the developer made (see the README, "Using with Plug and
  Phoenix"). Without `BANDIT_EBIN` the Bandit rows are left out; without `PLUG_EBIN` there is
  nothing to run. `mix h2flow.bench` runs the same rows as its `plug` section.

  Each row is `h2load -n N -c 10 -m 100` (N = 200,000, or 20,000 with `--quick`), the median
  of `--runs` runs (default 3, 1 with `--quick`) after a warm-up of N/10, with the VM's CPU
  time (user + system) per request.
  """

  use Mix.Task

  alias H2Flow.Bench.{Handler, Load, PlugApp}

  # Bandit is in the code path only when BANDIT_EBIN is set.
  @compile {:no_warn_undefined, [Bandit, ThousandIsland]}

  @switches [requests: :integer, runs: :integer, quick: :boolean]

  @impl Mix.Task
  def run(args) do
    {opts, _, _} = OptionParser.parse(args, strict: @switches)
    quick = Keyword.get(opts, :quick, false)
    h2load = System.find_executable("h2load") || Mix.raise("h2load is not on PATH")
    Mix.Task.run("app.start")
    Logger.configure(level: :warning)
    dir = Path.join(System.tmp_dir!(), "h2flow-bench")
    File.mkdir_p!(dir)

    ctx = %{
      quick: quick,
      runs: Keyword.get(opts, :runs, if(quick, do: 1, else: 3)),
      requests: Keyword.get(opts, :requests),
      h2load: h2load,
      dir: dir
    }

    %{rows: rows, details: details} = section(ctx)
    Mix.shell().info("\n| benchmark | result | target | met | reference |\n|---|---|---|---|---|")
    met = %{nil => "", true => "yes", false => "no"}

    for r <- rows,
        do: Mix.shell().info("| #{r.name} | #{r.shown} | #{r.target} | #{met[r.met]} | |")

    Mix.shell().info("\n" <> Enum.map_join(details, "\n", &("- " <> &1)))
  end

  @doc false
  # For `mix h2flow.bench`: rows (%{name, value, shown, target, met, reference}) and detail
  # lines. ctx: :quick, :runs, :h2load, :dir, and optionally :requests.
  def section(ctx) do
    case load_paths() do
      {:error, why} ->
        %{rows: [], details: ["plug: skipped (#{why})"]}

      {:ok, bandit?} ->
        n = ctx[:requests] || if(ctx.quick, do: 20_000, else: 200_000)
        servers = start_servers(bandit?)

        try do
          measure(Map.put(ctx, :n, n), servers)
        after
          Enum.each(servers, fn {_name, _port, stop} -> stop.() end)
        end
    end
  end

  defp load_paths do
    case System.get_env("PLUG_EBIN", "") do
      "" ->
        {:error, "PLUG_EBIN is not set"}

      plug ->
        bandit = System.get_env("BANDIT_EBIN", "")

        for dir <- String.split(plug <> ":" <> bandit, ":", trim: true),
            do: Code.prepend_path(dir)

        {:ok, _} = Application.ensure_all_started(:plug)
        bandit? = bandit != "" and match?({:ok, _}, Application.ensure_all_started(:bandit))
        {:ok, bandit?}
    end
  end

  # [{name, port, stop}]: h2flow with the native handler, h2flow with the Plug, Bandit.
  defp start_servers(bandit?) do
    local = [ip: {127, 0, 0, 1}, port: 0]
    {:ok, native} = H2Flow.start_link([handler: Handler] ++ local)
    {:ok, plug} = H2Flow.start_link([plug: PlugApp] ++ local)

    h2flow = [
      {"native handler", H2Flow.port(native), fn -> H2Flow.stop(native) end},
      {"Plug on h2flow", H2Flow.port(plug), fn -> H2Flow.stop(plug) end}
    ]

    if bandit? do
      opts = [plug: PlugApp, startup_log: false] ++ local
      {:ok, pid} = Bandit.start_link(opts)
      {:ok, {_ip, port}} = ThousandIsland.listener_info(pid)
      h2flow ++ [{"Plug on Bandit", port, fn -> Supervisor.stop(pid) end}]
    else
      h2flow
    end
  end

  defp measure(ctx, servers) do
    body = Path.join(ctx.dir, "plug-16k.bin")
    File.write!(body, :binary.copy("h2flow!\n", 2048))
    kinds = [{"GET /", "/", []}, {"POST 16 KiB", "/echo", ["-d", body]}]

    for {_, path, extra} <- kinds,
        {_, port, _} <- servers,
        do: h2load!(ctx, div(ctx.n, 10), port, path, extra)

    # Runs interleaved: every server once per round, so load on the machine hits them alike.
    results =
      for round <- 1..ctx.runs, {kind, path, extra} <- kinds, {name, port, _} <- servers do
        r = h2load!(ctx, ctx.n, port, path, extra)
        Mix.shell().info("  round #{round}, #{name}, #{kind}: #{round(r.rps)} req/s")
        {{kind, name}, r}
      end
      |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))

    med = fn kind, name, key -> median(Enum.map(results[{kind, name}], & &1[key])) end
    names = Enum.map(servers, &elem(&1, 0))

    rows =
      for {kind, _, _} <- kinds, name <- names do
        rps = med.(kind, name, :rps)
        cpu = med.(kind, name, :cpu_us)
        row("#{kind}, #{name} (h2load -n #{ctx.n} -c 10 -m 100)", rps, cpu)
      end ++ ratios(kinds, names, med)

    details =
      for {{kind, name}, runs} <- Enum.sort(results) do
        "plug: #{kind}, #{name}: " <>
          Enum.map_join(runs, " / ", &"#{round(&1.rps)} req/s (#{dec(&1.cpu_us)} µs CPU)")
      end

    %{rows: rows, details: details}
  end

  defp ratios(kinds, names, med) do
    for {kind, _, _} <- kinds,
        {other, target, ok?} <- [
          {"native handler", "≥ 0.85 (within 15%)", &(&1 >= 0.85)},
          {"Plug on Bandit", "≥ 3", &(&1 >= 3)}
        ],
        other in names do
      ratio = med.(kind, "Plug on h2flow", :rps) / med.(kind, other, :rps)

      %{
        name: "#{kind}: Plug on h2flow / #{other}",
        value: ratio,
        shown: dec(ratio, 2),
        target: target,
        met: ok?.(ratio),
        reference: ""
      }
    end
  end

  defp row(name, rps, cpu_us) do
    %{
      name: name,
      value: rps,
      shown: "#{round(rps)} req/s (#{dec(cpu_us)} µs CPU/req)",
      target: "",
      met: nil,
      reference: ""
    }
  end

  defp h2load!(ctx, n, port, path, extra) do
    args = ["-n", "#{n}", "-c", "10", "-m", "100"] ++ extra
    r = Load.run!(ctx.h2load, args, "http://127.0.0.1:#{port}#{path}")
    if r.succeeded != n, do: Mix.raise("h2load: #{r.succeeded} of #{n} requests succeeded")
    r
  end

  defp median(values), do: Load.median(values)
  defp dec(x, digits \\ 1), do: H2Flow.Bench.Report.dec(x, digits)
end
