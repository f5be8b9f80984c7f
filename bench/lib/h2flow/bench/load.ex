defmodule H2Flow.Bench.Load do
  @moduledoc false
  # h2load runs for the benchmark tasks: one run with its parsed report and the CPU time of the
  # server's OS process around it, runs interleaved over several servers, test files, medians.

  @doc """
  One `h2load` run against `url` with `args`; `cpu_pid` is the server's OS pid (`:self` for
  this VM, `nil` when unknown). Returns `%{seconds, total, succeeded, failed, rps, cpu_us}`
  (`cpu_us` per request, `nil` when unknown). Raises when a request failed.
  """
  def run!(h2load, args, url, cpu_pid \\ :self) do
    cpu0 = cpu_us(cpu_pid)
    {output, status} = System.cmd(h2load, ["-N", "60" | args] ++ [url], stderr_to_stdout: true)
    cpu1 = cpu_us(cpu_pid)
    if status != 0, do: Mix.raise("h2load #{Enum.join(args, " ")} #{url} failed:\n" <> output)
    report = parse!(output)

    if report.failed > 0 or report.succeeded == 0 do
      Mix.raise("h2load #{Enum.join(args, " ")} #{url}: requests failed:\n" <> output)
    end

    cpu = if cpu0 && cpu1, do: (cpu1 - cpu0) / report.succeeded
    Map.put(report, :cpu_us, cpu)
  end

  # The summary lines of h2load 1.52's report.
  defp parse!(output) do
    with [_, t, unit] <- Regex.run(~r/finished in ([\d.]+)(s|ms|us)/, output),
         [_ | counts] <-
           Regex.run(
             ~r/requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/,
             output
           ) do
      {t, ""} = Float.parse(t)
      seconds = t / %{"s" => 1, "ms" => 1_000, "us" => 1_000_000}[unit]
      [total, succeeded, failed] = Enum.map(counts, &String.to_integer/1)
      %{seconds: seconds, total: total, succeeded: succeeded, failed: failed, rps: succeeded / seconds}
    else
      _ -> Mix.raise("cannot read h2load's output:\n" <> output)
    end
  end

  @doc "User + system CPU time of an OS process (every thread), in µs; `nil` when unknown."
  def cpu_us(nil), do: nil
  def cpu_us(:self), do: cpu_us(System.pid())

  def cpu_us(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, stat} ->
        # Fields after the command name, which is in parentheses and may contain spaces:
        # utime is field 14, stime 15 (proc(5)).
        [_, rest] = String.split(stat, ") ", parts: 2)
        fields = String.split(rest, " ")
        ticks = String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
        ticks * 1_000_000 / clock_ticks()

      {:error, _} ->
        nil
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

  @doc "A file of `size` bytes, made once and kept in `dir` between runs."
  def data_file(dir, size) do
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

  @doc "The median of `key` over runs (or of plain numbers)."
  def median(runs, key), do: runs |> Enum.map(&Map.fetch!(&1, key)) |> median()

  def median(values) do
    sorted = Enum.sort(values)
    n = length(sorted)

    if rem(n, 2) == 1,
      do: Enum.at(sorted, div(n, 2)),
      else: (Enum.at(sorted, div(n, 2) - 1) + Enum.at(sorted, div(n, 2))) / 2
  end
end
