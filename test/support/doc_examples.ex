defmodule H2Flow.Test.DocExamples do
  @moduledoc false
  # Code examples of moduledocs and the README, for the tests that run them as written.

  @readme Path.expand("../../README.md", __DIR__)

  @doc "The indented code blocks of a module's moduledoc, unindented, in order."
  def moduledoc_blocks(module) do
    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(module)

    ~r/\n\n((?:    .*\n|\n)+)/
    |> Regex.scan(doc, capture: :all_but_first)
    |> Enum.map(fn [code] ->
      code |> String.split("\n") |> Enum.map_join("\n", &String.replace_prefix(&1, "    ", ""))
    end)
  end

  @doc "The fenced code blocks of the README after `marker` (an HTML comment), in order."
  def readme_blocks(marker) do
    [_, rest] = @readme |> File.read!() |> String.split(marker, parts: 2)

    ~r/^```\w*\n(.*?)^```$/ms
    |> Regex.scan(rest, capture: :all_but_first)
    |> Enum.map(&hd/1)
  end

  @doc """
  Defines the handler of H2Flow's moduledoc (`MyApp.Hello` there; other examples define a
  plug of that name) as `H2Flow.Test.DocHello`, once per VM. `rename/1` makes an example use it.
  """
  def define_hello! do
    :global.trans({{__MODULE__, :hello}, self()}, fn ->
      unless Code.ensure_loaded?(H2Flow.Test.DocHello) do
        [code | _] = moduledoc_blocks(H2Flow)
        [module, _rest] = String.split(code, "\n\n{:ok, server}", parts: 2)
        Code.eval_string(rename(module))
      end
    end)

    :ok
  end

  @doc "An example's code with `MyApp.Hello` as `H2Flow.Test.DocHello`."
  def rename(code), do: String.replace(code, "MyApp.Hello", "H2Flow.Test.DocHello")
end
