defmodule H2Flow.PlugOptionsTest do
  # The :plug option of H2Flow.start_link/1: exclusive with :handler, checked at start, the
  # plug's init/1 run once; and what an application without Plug is told.
  use ExUnit.Case, async: true

  defmodule InitOnce do
    @moduledoc false
    # A plug whose init/1 reports to the process it was given.
    @compile {:no_warn_undefined, Plug.Conn}
    def init({test, opts}), do: send(test, {:init, opts}) && opts
    def call(conn, _opts), do: Plug.Conn.send_resp(conn, 204, "")
  end

  defmodule NotAPlug do
    @moduledoc false
    def init(opts), do: opts
  end

  test ":handler and :plug are exclusive; :handler_opts goes with :handler" do
    assert_raise ArgumentError, ~r/:handler and :plug are exclusive/, fn ->
      H2Flow.start_link(handler: H2Flow.Test.FunHandler, plug: InitOnce, port: 0)
    end

    assert_raise ArgumentError, ~r/:handler_opts goes with :handler/, fn ->
      H2Flow.start_link(plug: InitOnce, handler_opts: [], port: 0)
    end

    assert_raise ArgumentError, ~r/:handler is required \(or :plug/, fn ->
      H2Flow.start_link(port: 0)
    end
  end

  @tag :no_plug
  test "without Plug in the application, :plug says what is missing" do
    refute Code.ensure_loaded?(Plug.Conn)

    assert_raise ArgumentError,
                 ~r/:plug needs Plug: add it to your application's dependencies/,
                 fn ->
                   H2Flow.start_link(plug: InitOnce, port: 0)
                 end
  end

  @tag :plug
  test "the plug's init/1 runs once, at start; something that is not a plug raises" do
    server = start_supervised!({H2Flow, plug: {InitOnce, {self(), :my_opts}}, port: 0})
    assert_received {:init, :my_opts}

    for _ <- 1..3 do
      url = "http://127.0.0.1:#{H2Flow.port(server)}/"

      assert {"204", 0} =
               System.cmd("curl", ["-sS", "--http2-prior-knowledge", "-w", "%{http_code}", url])
    end

    refute_received {:init, _}

    for bad <- [NotAPlug, {NotAPlug, []}, "InitOnce", {InitOnce, :a, :b}] do
      assert_raise ArgumentError, ~r/:plug must be a module plug/, fn ->
        H2Flow.start_link(plug: bad, port: 0)
      end
    end
  end
end
