defmodule H2Flow.ClientDocsTest do
  # The examples of the README's "The client" and "Testing your handlers", and of the moduledocs
  # of H2Flow.Client, H2Flow.Client.Response and H2Flow.Test, run as written (the one change:
  # port 8080 becomes port 0), with MyApp.Hello as the README's "A handler" defines it.
  use ExUnit.Case, async: false

  alias H2Flow.Test.FunHandler

  @readme Path.expand("../../README.md", __DIR__)

  setup_all do
    # MyApp.Hello, from the README's "A handler" (the module only: the lines after it start a
    # server on port 8080).
    [_, handler] = String.split(File.read!(@readme), "## A handler", parts: 2)
    [_, code | _] = String.split(handler, ~r/^```\w*\n/m)
    [module] = Regex.run(~r/^defmodule MyApp.Hello do\n.*?^end\n/ms, code)
    Code.eval_string(module)
    :ok
  end

  # The first fenced block after `marker`.
  defp block_after(marker) do
    [_, rest] = String.split(File.read!(@readme), marker, parts: 2)
    rest |> String.split(~r/^```\w*\n/m) |> Enum.at(1)
  end

  defp moduledoc_code(module) do
    {:docs_v1, _, _, _, %{"en" => doc}, _, _} = Code.fetch_docs(module)
    [_, code] = Regex.run(~r/\n\n((?:    .*\n|\n)+)/, doc)
    code |> String.split("\n") |> Enum.map_join("\n", &String.replace_prefix(&1, "    ", ""))
  end

  # The body of the one test of an example test module.
  defp test_body(code) do
    [_, body] = Regex.run(~r/^  test "[^"]*" do\n(.*?)^  end\n/ms, code)
    body
  end

  test "README: The client" do
    code = block_after("<!-- client-example -->")
    assert code =~ "port: 8080"
    {_, binding} = Code.eval_string(String.replace(code, "port: 8080", "port: 0"))
    refute Process.alive?(binding[:client])
  end

  test "README: Testing your handlers" do
    code = block_after("<!-- test-example -->")
    assert code =~ "use ExUnit.Case"
    Code.eval_string(test_body(code), [], __ENV__)
  end

  test "H2Flow.Test's moduledoc" do
    Code.eval_string(test_body(moduledoc_code(H2Flow.Test)), [], __ENV__)
  end

  test "H2Flow.Client's moduledoc" do
    {_, binding} = Code.eval_string(moduledoc_code(H2Flow.Client))
    refute Process.alive?(binding[:client])
  end

  test "H2Flow.Client.Response's moduledoc" do
    piece = :binary.copy("x", 65_536)

    client =
      H2Flow.Test.client!(
        handler: FunHandler,
        handler_opts: fn req ->
          req = H2Flow.Req.stream_reply(200, %{}, req)
          for _ <- 1..16, do: H2Flow.Req.stream_body(piece, :nofin, req)
          H2Flow.Req.stream_body("", :fin, req)
          req
        end
      )

    {_, binding} = Code.eval_string(moduledoc_code(H2Flow.Client.Response), client: client)
    assert byte_size(binding[:first_piece]) > 0

    assert {:ok, %{status: 200}} =
             H2Flow.Client.request(client, "GET", "/", [], nil, max_body: 2_000_000)
  end
end
