-- LÖVE settings. LDF_HEADLESS=1 runs without a window, graphics or sound (the test, a server).
function love.conf(t)
    t.identity = "lediflow-sprites"
    t.version = "11.4"
    t.window.title = "lediflow: sprites generated at start-up (space: new sheet, t: tileable)"
    t.window.width = 8 * 32 * 3
    t.window.height = 4 * 32 * 3
    -- The demo makes no sound.
    t.modules.audio = false
    t.modules.sound = false
    if os.getenv("LDF_HEADLESS") == "1" then
        t.window = false
        for _, m in ipairs({ "window", "graphics", "audio", "sound", "joystick", "touch", "video", "physics" }) do
            t.modules[m] = false
        end
    end
end
