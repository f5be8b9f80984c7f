defmodule H2Flow.Bench.Report do
  @moduledoc false
  # The benchmark report: rows with their targets, the table, the machine's description, the
  # BENCHMARKS.md section, and number formatting.

  @markers {"<!-- results:begin -->", "<!-- results:end -->"}

  @doc "A row: `format` shows the value; `target` is `{:min | :max, value, text}` or `nil`."
  def row(name, value, format, target, reference) do
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

  def table(results) do
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

  def header(ctx) do
    profile = H2Flow.Native.profile()

    warning =
      if profile != :release,
        do: ["- WARNING: the NIF is the #{profile} build; run in MIX_ENV=bench for real numbers"],
        else: []

    peers =
      for {name, url, pid} <- ctx[:peers] || [],
          do: "- peer #{name}: #{url}" <> if(pid, do: " (OS pid #{pid})", else: "")

    [
      "h2flow benchmarks, #{DateTime.utc_now() |> DateTime.truncate(:second)}" <>
        if(ctx.quick, do: " (--quick: tool check, not comparable)", else: ""),
      "- machine: #{:erlang.system_info(:logical_processors_available)} × #{cpu_model()}, " <>
        "#{os()}; load average before: #{loadavg()}",
      "- Erlang/OTP #{:erlang.system_info(:otp_release)} " <>
        "(erts #{:erlang.system_info(:version)}), " <>
        "Elixir #{System.version()}, #{:erlang.system_info(:schedulers_online)} schedulers, " <>
        "NIF profile #{profile}, #{h2load_version(ctx.h2load)}",
      "- h2load rows: median of #{ctx.runs} run(s), server on 127.0.0.1 (h2c, default " <>
        "options)" <> if(peers != [], do: ", peers' runs interleaved with h2flow's", else: "")
    ] ++ peers ++ warning
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

  def loadavg do
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

  def write_results(report) do
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

  def runs_line(runs), do: Enum.map_join(runs, " / ", &"#{int(&1.rps)} req/s#{cpu(&1)}")

  defp cpu(%{cpu_us: nil}), do: ""
  defp cpu(%{cpu_us: us}), do: " (#{dec(us)} µs CPU)"

  def int(x) do
    x
    |> round()
    |> Integer.to_string()
    |> String.reverse()
    |> String.replace(~r/(\d{3})(?=\d)/, "\\1,")
    |> String.reverse()
  end

  def dec(x, digits \\ 1), do: :erlang.float_to_binary(x / 1, decimals: digits)

  def kib(bytes) when abs(bytes) < 1024, do: "#{round(bytes)} B"
  def kib(bytes), do: "#{dec(bytes / 1024)} KiB"
end
