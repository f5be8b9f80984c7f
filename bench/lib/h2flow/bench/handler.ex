defmodule H2Flow.Bench.Handler do
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
