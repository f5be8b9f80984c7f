defmodule H2Flow.Bench.PlugApp do
  @moduledoc false
  # The Plug the Plug rows serve, on h2flow and on Bandit: GET / answers "Hello world!" as
  # text/plain; POST /echo reads the body piece by piece and answers its size (the native
  # handler's two routes).

  # Plug is in the code path only when PLUG_EBIN is set (see Mix.Tasks.H2flow.Bench.Plug).
  @compile {:no_warn_undefined, Plug.Conn}

  def init(opts), do: opts

  def call(%{method: "POST", request_path: "/echo"} = conn, _opts) do
    {size, conn} = read_all(conn, 0)
    conn |> Plug.Conn.put_resp_content_type("text/plain") |> Plug.Conn.send_resp(200, "#{size}")
  end

  def call(conn, _opts) do
    conn
    |> Plug.Conn.put_resp_content_type("text/plain")
    |> Plug.Conn.send_resp(200, "Hello world!")
  end

  defp read_all(conn, size) do
    case Plug.Conn.read_body(conn) do
      {:ok, data, conn} -> {size + byte_size(data), conn}
      {:more, data, conn} -> read_all(conn, size + byte_size(data))
    end
  end
end
